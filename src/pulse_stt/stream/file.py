"""Whole files: a file is a stream that arrives all at once.

The same VAD and endpointer cut the file into turns at pauses (never longer than the
model window); consecutive short turns are packed into one window (stream/packing.py),
and each pack is a FILE job on the shared engine, queued a group at a time with a
bounded number in flight so that a long file never sits in memory as float32 more than
once. `pulse-pro` decodes the same way (on `PULSE_STT_PRO_MODEL` when one is set).
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
from pulse_stt.stream.packing import TurnPacker
from pulse_stt.stream.session import SessionConfig, StreamSession, UtteranceAudio

# Turns are queued in groups, which an idle decode worker takes as one batch (one decoder
# call for several); two groups in flight keep VAD and the speaker encoder busy on the
# next group while the engine decodes one.
_GROUP = 8
_MAX_IN_FLIGHT = 2 * _GROUP
_PACK = True  # consecutive short turns decoded as one (stream/packing.py)


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
            eou_timeout_ms=600,
            vad_threshold=vad_threshold,
            max_utterance_s=max_utterance_s,
            partials=False,
        )
    )
    want_words = params.text.word_timestamps or params.text.sentence_timestamps
    in_flight: deque[tuple[UtteranceAudio, Future[Hypothesis | None]]] = deque()
    pending: list[tuple[UtteranceAudio, DecodeJob]] = []  # the next group, not queued yet
    turns: list[FileTurn] = []
    embedder = TurnEmbedder(speaker_encoder) if speaker_encoder is not None else None
    voices: list[tuple[int, TurnWindows]] = []
    # Short turns share a window, but not for speakers (each turn's voice is its own).
    packer = TurnPacker() if _PACK and embedder is None else None

    def collect_oldest() -> None:
        work, future = in_flight.popleft()
        hyp = future.result()
        if hyp is not None and not hyp.is_empty:
            turns.append(FileTurn(work.offset, hyp, work.utterance))

    def flush() -> None:
        futures = engine.submit_many([job for _, job in pending])
        in_flight.extend(zip([work for work, _ in pending], futures, strict=True))
        pending.clear()

    def submit(actions: Iterable[object]) -> None:
        for work in actions:
            if isinstance(work, UtteranceAudio) and work.is_final and work.audio.size:
                for each in packer.add(work) if packer is not None else [work]:
                    decode(each)

    def decode(work: UtteranceAudio) -> None:
        while in_flight and len(in_flight) + len(pending) >= _MAX_IN_FLIGHT:
            collect_oldest()
        job = DecodeJob(
            session_id=request_id,
            audio=work.audio,
            kind=JobKind.FILE,
            language=params.language.fixed,
            candidates=params.language.candidates,
            word_timestamps=want_words,
        )
        pending.append((work, job))
        if len(pending) >= _GROUP:
            flush()
        if embedder is not None:
            windows = embedder.embed(work.audio, work.offset, utterance=work.utterance, final=True)
            voices.append((work.utterance, windows))

    total = 0
    try:
        for chunk in chunks:
            total += chunk.size
            submit(session.feed_model_rate(chunk))
        submit(session.close())
        for work in packer.close() if packer is not None else ():
            decode(work)
        flush()
        while in_flight:
            collect_oldest()
    finally:
        engine.cancel_session(request_id)
    if voices:
        tracks = dict(zip((u for u, _ in voices), label_file([w for _, w in voices]), strict=True))
        turns = [replace(t, speakers=tracks.get(t.utterance)) for t in turns]
    return FileTranscription(tuple(turns), total / MODEL_RATE)
