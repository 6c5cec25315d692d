"""Whisper's hallucination guard: one rule set for every decoding pass.

A pass's text is judged on the figures Whisper itself uses (no-speech probability,
average log-probability, gzip compression ratio) plus two of ours: a loop found in the
words (`repeats_itself`) and a token cap hit on a short window. The transcriber acts on
the verdict the same way on every path: silence, loops and empty output are dropped; a
final whose short-window pass is looped or unsure is redone on the full 30 s window.

That redo decodes exactly as offline faster-whisper does, so
it is judged as offline Whisper judges: our two loop heuristics are left out there
(`full_window=True`). They exist to catch a short window's decoding loops cheaply; on the
full window a phrase said twice ("I don't know, I don't know") is speech, and Whisper's
compression-ratio check with temperature fallback already guards against loops.
"""

from __future__ import annotations

import enum
import zlib

# Whisper's own thresholds (also handed to faster-whisper's temperature fallback).
NO_SPEECH_THRESHOLD = 0.6
LOG_PROB_THRESHOLD = -1.0
COMPRESSION_RATIO_THRESHOLD = 2.4


class Verdict(enum.Enum):
    KEEP = "keep"
    UNSURE = "unsure"  # low average log-probability: kept, but a short-window final is redone
    LOOPED = "looped"  # a decoding loop or a hit token cap: dropped (a short final is redone)
    SILENT = "silent"  # no speech: dropped, never redone
    EMPTY = "empty"  # no token at all: nothing to keep

    @property
    def dropped(self) -> bool:
        """The pass's text must not be sent."""
        return self in (Verdict.SILENT, Verdict.LOOPED, Verdict.EMPTY)

    @property
    def redo_on_full_window(self) -> bool:
        """A final decoded on a short window with this verdict is decoded again on 30 s."""
        return self in (Verdict.LOOPED, Verdict.UNSURE)


def judge(
    text: str,
    *,
    tokens: int,
    avg_logprob: float,
    no_speech_prob: float,
    token_cap: int | None = None,
    full_window: bool = False,
) -> Verdict:
    """The verdict on one pass's text; `token_cap`: the pass's token limit (None: none);
    `full_window`: the offline-style 30 s pass (Whisper's own rules only, see above)."""
    if no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOG_PROB_THRESHOLD:
        return Verdict.SILENT
    looped_here = not full_window and (
        repeats_itself(text) or (token_cap is not None and tokens >= token_cap)
    )
    if compression_ratio(text) > COMPRESSION_RATIO_THRESHOLD or looped_here:
        return Verdict.LOOPED
    if tokens == 0:
        return Verdict.EMPTY
    if avg_logprob < LOG_PROB_THRESHOLD:
        return Verdict.UNSURE
    return Verdict.KEEP


def compression_ratio(text: str) -> float:
    """Bytes of `text` over bytes of its zlib compression (as Whisper computes it)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def repeats_itself(text: str) -> bool:
    """A decoding loop: a word 4x, a pair 3x, or a longer phrase twice, back to back."""
    words = [w.strip(".,!?;:").lower() for w in text.split()]
    for n in range(1, len(words) // 2 + 1):
        times = 4 if n == 1 else 3 if n == 2 else 2
        for i in range(len(words) - n * times + 1):
            first = words[i : i + n]
            if all(words[i + k * n : i + (k + 1) * n] == first for k in range(1, times)):
                return True
    return False
