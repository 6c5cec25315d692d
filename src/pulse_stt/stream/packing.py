"""Whole-file turns packed together into one encoder window.

A file's turns are cut at pauses, so most are a few seconds long, and every pass pads its
audio to a window of at least 15 s (engine/transcriber.py WindowPolicy). On CPU the
encoder, which does not batch, then costs more than the decoder, and most of what it
encodes is padding (bench/engine_profile.py). Consecutive turns are therefore decoded
together while they fit one minimum window: each pack is the turns' audio with the
pauses between them kept at their real length (as silence), so the words' times from the
pack's start are their times from its first turn's offset.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from pulse_stt.protocol import MODEL_RATE
from pulse_stt.stream.session import UtteranceAudio


@dataclass(frozen=True)
class PackPolicy:
    # 14 s of audio + 1 s of padding: the 15 s minimum window a final gets anyway.
    max_audio_s: float = 14.0
    max_gap_s: float = 2.0  # a longer pause starts a new pack

    def fits(self, first: UtteranceAudio, last: UtteranceAudio, turn: UtteranceAudio) -> bool:
        """Whether `turn` may join the pack running from `first` to `last`."""
        gap = turn.offset - _end(last)
        span = _end(turn) - first.offset
        return gap <= self.max_gap_s and span <= self.max_audio_s


class TurnPacker:
    """Feed final turns in order; get back packs (each one turn, or several joined)."""

    def __init__(self, policy: PackPolicy | None = None) -> None:
        self.policy = policy or PackPolicy()
        self._open: list[UtteranceAudio] = []

    def add(self, turn: UtteranceAudio) -> list[UtteranceAudio]:
        """The packs this turn completes (none, or the one it does not fit)."""
        done: list[UtteranceAudio] = []
        if self._open and not self.policy.fits(self._open[0], self._open[-1], turn):
            done = self.close()
        self._open.append(turn)
        return done

    def close(self) -> list[UtteranceAudio]:
        """The open pack, if any."""
        turns, self._open = self._open, []
        return [join_turns(turns)] if turns else []


def join_turns(turns: list[UtteranceAudio]) -> UtteranceAudio:
    """One utterance from consecutive turns: their audio and the pauses between them."""
    if len(turns) == 1:
        return turns[0]
    first = turns[0]
    parts: list[np.ndarray] = []
    position = first.offset
    for turn in turns:
        gap = max(0, round((turn.offset - position) * MODEL_RATE))
        if gap:
            parts.append(np.zeros(gap, dtype=np.float32))
        parts.append(turn.audio.astype(np.float32, copy=False))
        position = max(position, turn.offset) + turn.audio.size / MODEL_RATE
    return replace(first, audio=np.concatenate(parts), reason=turns[-1].reason)


def _end(turn: UtteranceAudio) -> float:
    return turn.offset + turn.audio.size / MODEL_RATE
