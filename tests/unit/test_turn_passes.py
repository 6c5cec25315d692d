"""Stable finals (stream/turn_passes.py, stream/stabilizer.py): speculative passes settle a
long turn at its pauses, and the next one, and the turn's final, decode only the audio
after the last settled pause. Driven through `LiveStream` with a stand-in engine that
knows where every word of the stream lies (tests/unit/test_word_limit.TimelineDecoder)."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest

from pulse_stt.engine.types import DecodeJob, Hypothesis
from pulse_stt.protocol import MODEL_RATE, JobKind
from pulse_stt.stream.live import LiveConfig, LiveServices, LiveStream
from tests.unit.test_live import FRAME_BYTES, drive, stream_params, transcripts
from tests.unit.test_word_limit import TimelineDecoder, noisy_reading


class RecordingTimeline(TimelineDecoder):
    """The timeline engine, keeping every job it was given."""

    def __init__(self, pcm: np.ndarray) -> None:
        super().__init__(pcm)
        self.jobs: list[DecodeJob] = []

    def submit(self, job: DecodeJob) -> Future[Hypothesis | None]:
        self.jobs.append(job)
        return super().submit(job)

    def kind(self, kind: JobKind) -> list[DecodeJob]:
        return [j for j in self.jobs if j.kind is kind]


@pytest.fixture(scope="module")
def pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2)


@pytest.fixture(scope="module")
def reading(librivox_clips: list[np.ndarray]) -> np.ndarray:
    """One turn: its 0.4 s pauses are far below the stream's 3 s turn-ending silence."""
    return noisy_reading(librivox_clips, seed=5)


def _stream(
    reading: np.ndarray, pool: ThreadPoolExecutor, *, stable: bool, frame_bytes: int
) -> tuple[list[str], RecordingTimeline]:
    """The words of every final, in order, and the engine's record."""
    decoder = RecordingTimeline(reading)
    data = reading.astype("<i2").tobytes()

    async def script(live: LiveStream) -> None:
        for i in range(0, len(data), frame_bytes):
            assert await live.room()
            assert await live.feed(data[i : i + frame_bytes], 0.0)
            await asyncio.sleep(0)  # let passes come back between frames
        await live.close(0.0)

    async def main() -> list[str]:
        params = stream_params(eou_timeout_ms="3000")
        services = LiveServices(decoder=decoder, dsp_pool=pool)
        live = LiveStream("s-1", params, services, LiveConfig(stable_finals=stable))
        events = await drive(live, script)
        finals = [m for m in transcripts(events) if m.is_final]
        return " ".join(f.transcript.text for f in finals).split()

    return asyncio.run(main()), decoder


def _in_order_once(words: list[str]) -> None:
    first = int(words[0][1:])
    assert first <= 1
    assert words == [f"w{i}" for i in range(first, first + len(words))]


def _final_quality_audio_s(decoder: RecordingTimeline) -> float:
    return sum(j.audio.size for j in decoder.jobs if j.kind.final_quality) / MODEL_RATE


def test_a_long_turn_is_settled_at_its_pauses_and_its_final_decodes_only_the_rest(
    reading: np.ndarray, pool: ThreadPoolExecutor
) -> None:
    words, decoder = _stream(reading, pool, stable=True, frame_bytes=FRAME_BYTES)
    # Every word of the reading once, in order: no word lost or repeated at a seam.
    _in_order_once(words)
    chained = [j for j in decoder.jobs if j.kind.final_quality and j.prompt]
    assert chained, "no pass started after a settled pause"
    # A chained pass has the settled words as its prompt, and word times to place its own.
    assert all(j.prompt and j.prompt.split()[-1].startswith("w") for j in chained)
    assert all(j.word_timestamps for j in chained)
    assert any(j.kind is JobKind.FINAL for j in chained)
    # Final-quality passes decoded far less audio than when each decodes its whole turn.
    whole_words, whole = _stream(reading, pool, stable=False, frame_bytes=FRAME_BYTES)
    _in_order_once(whole_words)
    assert not [j for j in whole.jobs if j.kind.final_quality and j.prompt]
    assert _final_quality_audio_s(decoder) < 0.6 * _final_quality_audio_s(whole)


def test_a_burst_loses_and_repeats_no_word(reading: np.ndarray, pool: ThreadPoolExecutor) -> None:
    """Audio faster than the passes come back: fewer pauses are settled in time, the
    finals decode more, and the words are still all there once."""
    words, _ = _stream(reading, pool, stable=True, frame_bytes=10 * MODEL_RATE * 2)
    _in_order_once(words)
