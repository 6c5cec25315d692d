"""What a live stream needs from its server: the shared engine, where it reports, the
server's settings it follows, and the services every stream shares (stream/live.py)."""

from __future__ import annotations

from concurrent.futures import Executor, Future
from dataclasses import dataclass
from typing import Protocol

from pulse_stt.engine.types import DecodeJob, Hypothesis
from pulse_stt.speakers.encoder import VoiceEncoder
from pulse_stt.text.itn import NemoInverseNormalizer


class Decoder(Protocol):
    """The shared engine, as a stream uses it (engine/engine.py)."""

    def submit(self, job: DecodeJob) -> Future[Hypothesis | None]: ...

    def promote(self, future: Future[Hypothesis | None]) -> None: ...

    def cancel_session(self, session_id: str) -> None: ...


class LiveObserver(Protocol):
    """Where a stream reports audio arrival and speech onsets (ops/metrics.StreamMetrics)."""

    def audio_received(self, end_s: float, arrived_at: float) -> None: ...

    def speech_started(self, turn: int, position_s: float) -> None: ...


@dataclass(frozen=True)
class LiveConfig:
    """The server's settings a stream follows."""

    vad_threshold: float = 0.5
    partial_interval_ms: int = 500
    max_utterance_s: float = 25.0
    max_backlog_bytes: int = 4 * 1024 * 1024
    stable_finals: bool = True  # finals decode after the settled words (stream/stabilizer.py)


@dataclass(frozen=True)
class LiveServices:
    """Shared by every stream of a server."""

    decoder: Decoder
    dsp_pool: Executor  # session DSP (decode, resample, VAD) and heavy shaping
    speaker_pool: Executor | None = None  # speaker embeddings, beside the decode
    itn: NemoInverseNormalizer | None = None
    speaker_encoder: VoiceEncoder | None = None
