"""Whole files: a file is a stream that arrives all at once.

The same VAD and endpointer cut the file into turns at pauses (never longer than the
model window); each turn is one batch pass on the shared engine, with a bounded number
in flight so that a long file never sits in memory as float32 more than once.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass, replace

import numpy as np

from pulse_stt.engine.engine import Engine
from pulse_stt.engine.types import DecodeJob, Hypothesis
from pulse_stt.protocol import MODEL_RATE, FileParams, JobKind
from pulse_stt.speakers.embedder import TurnEmbedder
from pulse_stt.speakers.encoder import TurnWindows, VoiceEncoder
from pulse_stt.speakers.tracker import SpeakerTrack, label_file
from pulse_stt.stream.session import SessionConfig, StreamSession, UtteranceAudio

_MAX_IN_FLIGHT = 4


@dataclass(frozen=True)
class FileTurn:
    offset: float  # seconds from the start of the file
    hypothesis: Hypothesis
    utterance: int = 0
    speakers: SpeakerTrack | None = None  # with a speaker encoder (diarize=true)


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
    speaker_encoder: VoiceEncoder | None = None,
) -> FileTranscription:
    """Blocking: run in a worker thread. `chunks` are 16 kHz mono float32.

    With `speaker_encoder`, each turn's voice is embedded here while the engine decodes
    earlier turns, and the whole file is clustered into speakers at the end.
    """
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
    embedder = TurnEmbedder(speaker_encoder) if speaker_encoder is not None else None
    voices: list[tuple[int, TurnWindows]] = []

    def collect_oldest() -> None:
        work, future = in_flight.popleft()
        hyp = future.result()
        if hyp is not None and not hyp.is_empty:
            turns.append(FileTurn(work.offset, hyp, work.utterance))
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
                kind=JobKind.FILE,
                language=params.language.fixed,
                candidates=params.language.candidates,
                word_timestamps=want_words,
                pro=params.pro,
                prompt=" ".join(previous_text[-2:]) if params.pro and previous_text else None,
            )
            in_flight.append((work, engine.submit(job)))
            if embedder is not None:
                windows = embedder.embed(
                    work.audio, work.offset, utterance=work.utterance, final=True
                )
                voices.append((work.utterance, windows))

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
    if voices:
        tracks = dict(zip((u for u, _ in voices), label_file([w for _, w in voices]), strict=True))
        turns = [replace(t, speakers=tracks.get(t.utterance)) for t in turns]
    return FileTranscription(tuple(turns), total / MODEL_RATE)
