"""What a live stream tells its client, as typed events; api/schemas.py turns each into
its wire JSON."""

from __future__ import annotations

from dataclasses import dataclass

from pulse_stt.protocol import ErrorKind, FinalReason
from pulse_stt.text.format import TimedWord, Transcript


@dataclass(frozen=True)
class VadEvent:
    kind: str  # speech_started | speech_ended
    timestamp: float  # seconds since the stream's first audio byte


@dataclass(frozen=True)
class ErrorEvent:
    kind: ErrorKind
    message: str


@dataclass(frozen=True)
class TranscriptEvent:
    turn: int
    transcript: Transcript
    is_final: bool
    reason: FinalReason | None  # what ended the turn, for a final
    full_transcript: str | None = None  # with full_transcript=true
    # The words, when they carry decoded times (for the word-lag metric).
    timed_words: tuple[TimedWord, ...] = ()

    @property
    def is_last(self) -> bool:
        return self.reason is FinalReason.CLOSE

    @property
    def from_finalize(self) -> bool:
        return self.reason is FinalReason.FINALIZE


LiveEvent = VadEvent | ErrorEvent | TranscriptEvent
