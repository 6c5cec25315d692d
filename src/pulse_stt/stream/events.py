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
    channel: int | None = None  # the channel of a stream of several (stream/channels.py)


@dataclass(frozen=True)
class ErrorEvent:
    kind: ErrorKind
    message: str


@dataclass(frozen=True)
class PongEvent:
    """The answer to a client's keepalive."""


@dataclass(frozen=True)
class WarningEvent:
    """Something the client sent was ignored; unlike an error, nothing is wrong with the
    session (frameworks treat any `error` as fatal)."""

    kind: str  # e.g. unknown_message
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
    channel: int | None = None  # the channel of a stream of several (stream/channels.py)
    # False on the close finals of a stream's channels but the last (stream/channels.py):
    # a stream sends is_last once.
    ends_stream: bool = True

    @property
    def is_last(self) -> bool:
        return self.reason is FinalReason.CLOSE and self.ends_stream

    @property
    def from_finalize(self) -> bool:
        return self.reason is FinalReason.FINALIZE

    @property
    def speech_final(self) -> bool:
        """A final that ends its turn (silence, finalize, close); false on partials and on
        cuts inside a turn (max_words, max_length)."""
        return self.is_final and self.reason is not None and self.reason.ends_turn


LiveEvent = VadEvent | ErrorEvent | PongEvent | WarningEvent | TranscriptEvent
