"""Whole files: a file is a stream that arrives all at once.

The same VAD and endpointer cut the file into turns at pauses (never longer than the
model window); each turn is one batch pass on the shared engine, with a bounded number
in flight so that a long file never sits in memory as float32 more than once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from pulse_stt.api.params import FileParams
from pulse_stt.audio.resample import MODEL_RATE
from pulse_stt.engine.engine import Engine
from pulse_stt.engine.types import DecodeJob, Hypothesis
from pulse_stt.stream.session import SessionConfig, StreamSession, UtteranceAudio

_MAX_IN_FLIGHT = 4


@dataclass(frozen=True)
class FileTurn:
    offset: float  # seconds from the start of the file
    hypothesis: Hypothesis


@dataclass(frozen=True)
class FileTranscription:
    turns: tuple[FileTurn, ...]
    duration: float


def transcribe_audio_chunks(
    chunks: Iterable[np.ndarray],
    *,
    engine: Engine,
    params: FileParams,
    request_id: str,
    vad_threshold: float = 0.5,
    max_utterance_s: float = 25.0,
) -> FileTranscription:
    """Blocking: run in a worker thread. `chunks` are 16 kHz mono float32."""
    session = StreamSession(
        SessionConfig(
            encoding="linear16",
            sample_rate=MODEL_RATE,
            # pulse-pro: longer turns (more context per pass), cut only at longer pauses.
            eou_timeout_ms=1500 if params.pro else 600,
            vad_threshold=vad_threshold,
            max_utterance_s=28.0 if params.pro else max_utterance_s,
            partials=False,
        )
    )
    want_words = params.text.word_timestamps or params.text.sentence_timestamps
    in_flight: deque[tuple[UtteranceAudio, Future[Hypothesis | None]]] = deque()
    turns: list[FileTurn] = []
    previous_text: list[str] = []
    # pulse-pro conditions each turn on the text before it, so it decodes one at a time.
    limit = 1 if params.pro else _MAX_IN_FLIGHT

    def collect_oldest() -> None:
        work, future = in_flight.popleft()
        hyp = future.result()
        if hyp is not None and not hyp.is_empty:
            turns.append(FileTurn(work.offset, hyp))
            previous_text.append(hyp.text)

    def submit(actions: Iterable[object]) -> None:
        for work in actions:
            if not isinstance(work, UtteranceAudio) or not work.is_final or not work.audio.size:
                continue
            while len(in_flight) >= limit:
                collect_oldest()
            job = DecodeJob(
                session_id=request_id,
                audio=work.audio,
                is_final=True,
                language=params.language.fixed,
                candidates=params.language.candidates,
                word_timestamps=want_words,
                pro=params.pro,
                batch=True,
                prompt=" ".join(previous_text[-2:]) if params.pro and previous_text else None,
            )
            in_flight.append((work, engine.submit(job)))

    total = 0
    try:
        for chunk in chunks:
            total += chunk.size
            submit(session.feed_model_rate(chunk))
        submit(session.close())
        while in_flight:
            collect_oldest()
    finally:
        engine.cancel_session(request_id)
    return FileTranscription(tuple(turns), total / MODEL_RATE)
