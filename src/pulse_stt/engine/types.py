"""What the engine takes and gives back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pulse_stt.protocol import JobKind, PassKind


@dataclass(frozen=True)
class Word:
    text: str
    start: float  # seconds from the start of the decoded audio
    end: float
    probability: float


@dataclass(frozen=True)
class Hypothesis:
    text: str
    words: tuple[Word, ...] = ()
    language: str | None = None
    language_candidates: tuple[str, ...] = ()
    # A speculative pass whose short window the guard would redo on the full window: shown
    # as a partial, but a final never reuses it (the redo waits until the turn has ended).
    provisional: bool = False

    @property
    def is_empty(self) -> bool:
        return not self.text.strip()


@dataclass
class DecodeJob:
    """One pass of the model over one utterance's audio (16 kHz float32)."""

    session_id: str
    audio: np.ndarray
    kind: JobKind  # decides the pass's quality settings and its queue (see JobKind)
    language: str | None  # fixed language, or None to detect among `candidates`
    candidates: tuple[str, ...] = ()
    word_timestamps: bool = False
    hotwords: str | None = None
    prompt: str | None = None  # text that preceded this audio (context for the decoder)
    full_window: bool = False  # straight to the full-window pass (its short one was bad)

    @property
    def is_final(self) -> bool:
        """Decoded with final quality (speculative and whole-file passes included)."""
        return self.kind.final_quality

    @property
    def speculative(self) -> bool:
        return self.kind is JobKind.SPECULATIVE

    @property
    def batch(self) -> bool:
        """Whole-file work: queued behind live finals, never coalesced."""
        return self.kind is JobKind.FILE

    @property
    def pass_kind(self) -> PassKind:
        return self.kind.pass_kind
