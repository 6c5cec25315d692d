"""Whole files: a file is a stream that arrives all at once.

The same VAD and endpointer cut the file into turns at pauses (never longer than the
model window); consecutive short turns are packed into one window (stream/packing.py),
and each pack is a FILE job on the shared engine, queued a group at a time with a
bounded number in flight so that a long file never sits in memory as float32 more than
once. `pulse-pro` decodes the same way (on `PULSE_STT_PRO_MODEL` when one is set).
With `multichannel=true` each channel is such a file of its own (`_ChannelFile`).
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
    channel: int = 0  # the file's channel (multichannel=true; else 0)


@dataclass(frozen=True)
class FileTranscription:
    turns: tuple[FileTurn, ...]  # in time order (across channels: by start, then channel)
    duration: float
    channels: int = 1  # channels transcribed on their own (1: mono, or mixed down)


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
    """Blocking: run in a worker thread. `chunks` are 16 kHz float32: 1-D (mono), or of
    shape (channels, samples), each channel then transcribed on its own, as a file of its
    own: its own turns (VAD) and, with `speaker_encoder`, its own speakers. The channels
    are fed in step, so memory stays bounded by the chunk size.

    With `speaker_encoder`, each turn's voice is embedded here while the engine decodes
    earlier turns, and the whole file (each channel) is clustered into speakers at the end.
    """
    channels: list[_ChannelFile] = []

    def channel_files(count: int) -> list[_ChannelFile]:
        while len(channels) < count:
            channels.append(
                _ChannelFile(
                    len(channels),
                    engine=engine,
                    params=params,
                    request_id=request_id,
                    vad_threshold=vad_threshold,
                    max_utterance_s=max_utterance_s,
                    speaker_encoder=speaker_encoder,
                )
            )
        return channels

    total = 0
    try:
        for chunk in chunks:
            rows = chunk.reshape(1, -1) if chunk.ndim == 1 else chunk
            total += rows.shape[1]
            for channel, row in zip(channel_files(rows.shape[0]), rows, strict=True):
                channel.feed(row)
        for channel in channel_files(1):
            channel.close()
        for channel in channels:
            channel.drain()
    finally:
        engine.cancel_session(request_id)
    turns = [turn for channel in channels for turn in channel.finished_turns()]
    if len(channels) > 1:
        turns.sort(key=lambda t: (t.offset, t.channel))
    return FileTranscription(tuple(turns), total / MODEL_RATE, len(channels))


class _ChannelFile:
    """One channel of a file: its turns cut by its own VAD, decoded on the shared engine
    with a bounded number in flight."""

    def __init__(
        self,
        channel: int,
        *,
        engine: Engine,
        params: FileParams,
        request_id: str,
        vad_threshold: float,
        max_utterance_s: float,
        speaker_encoder: VoiceEncoder | None,
    ) -> None:
        self.channel = channel
        self._engine = engine
        self._params = params
        self._request_id = request_id
        self._session = StreamSession(
            SessionConfig(
                encoding="linear16",
                sample_rate=MODEL_RATE,
                eou_timeout_ms=600,
                vad_threshold=vad_threshold,
                max_utterance_s=max_utterance_s,
                partials=False,
            )
        )
        self._want_words = params.text.word_timestamps or params.text.sentence_timestamps
        self._in_flight: deque[tuple[UtteranceAudio, Future[Hypothesis | None]]] = deque()
        self._pending: list[tuple[UtteranceAudio, DecodeJob]] = []  # the next group
        self.turns: list[FileTurn] = []
        self._embedder = TurnEmbedder(speaker_encoder) if speaker_encoder is not None else None
        self._voices: list[tuple[int, TurnWindows]] = []
        # Short turns share a window, but not for speakers (each turn's voice is its own).
        self._packer = TurnPacker() if _PACK and self._embedder is None else None

    def feed(self, audio: np.ndarray) -> None:
        self._submit(self._session.feed_model_rate(audio))

    def close(self) -> None:
        self._submit(self._session.close())
        for work in self._packer.close() if self._packer is not None else ():
            self._decode(work)
        self._flush()

    def drain(self) -> None:
        while self._in_flight:
            self._collect_oldest()

    def finished_turns(self) -> list[FileTurn]:
        """The channel's turns, with their speakers (clustered over the whole channel)."""
        if not self._voices:
            return self.turns
        voices = self._voices
        labels = label_file([w for _, w in voices])
        tracks = dict(zip((u for u, _ in voices), labels, strict=True))
        return [replace(t, speakers=tracks.get(t.utterance)) for t in self.turns]

    def _collect_oldest(self) -> None:
        work, future = self._in_flight.popleft()
        hyp = future.result()
        if hyp is not None and not hyp.is_empty:
            self.turns.append(FileTurn(work.offset, hyp, work.utterance, channel=self.channel))

    def _flush(self) -> None:
        if not self._pending:
            return
        futures = self._engine.submit_many([job for _, job in self._pending])
        self._in_flight.extend(zip([work for work, _ in self._pending], futures, strict=True))
        self._pending.clear()

    def _submit(self, actions: Iterable[object]) -> None:
        for work in actions:
            if isinstance(work, UtteranceAudio) and work.is_final and work.audio.size:
                for each in self._packer.add(work) if self._packer is not None else [work]:
                    self._decode(each)

    def _decode(self, work: UtteranceAudio) -> None:
        while self._in_flight and len(self._in_flight) + len(self._pending) >= _MAX_IN_FLIGHT:
            self._collect_oldest()
        params = self._params
        job = DecodeJob(
            session_id=self._request_id,
            audio=work.audio,
            kind=JobKind.FILE,
            language=params.language.fixed,
            candidates=params.language.candidates,
            word_timestamps=self._want_words,
        )
        self._pending.append((work, job))
        if len(self._pending) >= _GROUP:
            self._flush()
        if self._embedder is not None:
            windows = self._embedder.embed(
                work.audio, work.offset, utterance=work.utterance, final=True
            )
            self._voices.append((work.utterance, windows))
