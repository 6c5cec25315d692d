"""What the engine takes and gives back."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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

    @property
    def is_empty(self) -> bool:
        return not self.text.strip()


@dataclass
class DecodeJob:
    """One pass of the model over one utterance's audio (16 kHz float32)."""

    session_id: str
    audio: np.ndarray
    is_final: bool
    language: str | None  # fixed language, or None to detect among `candidates`
    candidates: tuple[str, ...] = ()
    word_timestamps: bool = False
    hotwords: str | None = None
    pro: bool = False  # the whole-file `pulse-pro` configuration
    batch: bool = False  # whole-file work: queued behind live finals, never coalesced
    prompt: str | None = None  # text that preceded this audio (context for the decoder)
    # A final-quality pass started at a pause, before the turn is known to be over: queued
    # and coalesced like a partial until a final `promote`s it.
    speculative: bool = False
