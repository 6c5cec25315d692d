"""`pulse_stt.stream.live.LiveStream` driven without a socket: real speech through the real
session (decoder, resampler, VAD), a stand-in engine that "transcribes" by audio length."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace

import numpy as np
import pytest

from pulse_stt.api.params import parse_stream_params
from pulse_stt.engine.types import DecodeJob, Hypothesis, Word
from pulse_stt.protocol import MODEL_RATE, ErrorKind, FinalReason, StreamParams
from pulse_stt.stream.events import ErrorEvent, LiveEvent, TranscriptEvent, VadEvent
from pulse_stt.stream.live import LiveServices, LiveStream

FRAME_BYTES = 1280  # 40 ms of linear16 at 16 kHz
WORD_S = 0.4  # the stand-in model hears one word per 0.4 s of audio
NUMBERS = "one two three four five six seven eight nine ten".split() * 20


def words_for(samples: int) -> tuple[Word, ...]:
    count = int(samples / MODEL_RATE / WORD_S)
    return tuple(Word(f" {NUMBERS[i]}", i * WORD_S, i * WORD_S + 0.3, 0.9) for i in range(count))


class FakeDecoder:
    """Answers each job at once with one number word per 0.4 s of its audio; records jobs."""

    def __init__(self, fail_finals: bool = False) -> None:
        self.jobs: list[DecodeJob] = []
        self.lock = threading.Lock()
        self.fail_finals = fail_finals
        self.cancelled: list[str] = []

    def submit(self, job: DecodeJob) -> Future[Hypothesis | None]:
        with self.lock:
            self.jobs.append(job)
        future: Future[Hypothesis | None] = Future()
        if self.fail_finals and job.is_final and not job.speculative:
            future.set_exception(RuntimeError("the model pass failed"))
            return future
        words = words_for(job.audio.size)
        future.set_result(Hypothesis("".join(w.text for w in words), words, language="en"))
        return future

    def submit_many(self, jobs: list[DecodeJob]) -> list[Future[Hypothesis | None]]:
        return [self.submit(job) for job in jobs]

    def promote(self, future: Future[Hypothesis | None]) -> None:
        pass

    def cancel_session(self, session_id: str) -> None:
        self.cancelled.append(session_id)


def stream_params(**query: str) -> StreamParams:
    base = {"model": "pulse", "language": "en", "sample_rate": "16000", "encoding": "linear16"}
    return parse_stream_params({**base, **query}, legacy_path=False)


@pytest.fixture(scope="module")
def pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2)


@pytest.fixture(scope="module")
def speech(librivox_clips: list[np.ndarray]) -> bytes:
    """A real turn (a LibriVox clip) followed by 1.5 s of silence, as linear16 bytes."""
    silence = np.zeros(int(1.5 * MODEL_RATE), dtype=np.int16)
    return np.concatenate([librivox_clips[0], silence]).astype("<i2").tobytes()


Script = Callable[[LiveStream], Awaitable[None]]


async def drive(live: LiveStream, script: Script) -> list[LiveEvent]:
    """Run `script` (which feeds the stream) while a consumer takes every event, as the
    transport's two loops do; returns the events in the order they were handed out."""
    events: list[LiveEvent] = []

    async def consume() -> None:
        while (batch := await live.next_events()) is not None:
            events.extend(batch)

    consumer = asyncio.create_task(consume())
    await script(live)
    await asyncio.wait_for(consumer, 30)
    return events


async def feed_frames(live: LiveStream, pcm: bytes) -> None:
    for i in range(0, len(pcm), FRAME_BYTES):
        assert await live.room()
        assert await live.feed(pcm[i : i + FRAME_BYTES], 0.0)


def transcripts(events: list[LiveEvent]) -> list[TranscriptEvent]:
    return [e for e in events if isinstance(e, TranscriptEvent)]


def final_jobs(decoder: FakeDecoder) -> list[DecodeJob]:
    return [j for j in decoder.jobs if j.is_final and not j.speculative]


def run(
    params: StreamParams,
    script: Script,
    pool: ThreadPoolExecutor,
    decoder: FakeDecoder | None = None,
) -> tuple[list[LiveEvent], FakeDecoder]:
    decoder = decoder or FakeDecoder()

    async def main() -> list[LiveEvent]:
        live = LiveStream("s-1", params, LiveServices(decoder=decoder, dsp_pool=pool))
        return await drive(live, script)

    return asyncio.run(main()), decoder


def test_partials_then_the_final_of_each_turn_in_order(
    speech: bytes, pool: ThreadPoolExecutor
) -> None:
    async def script(live: LiveStream) -> None:
        await feed_frames(live, speech)
        await live.close(0.0)

    events, decoder = run(stream_params(vad_events="true"), script, pool)
    messages = transcripts(events)
    finals = [m for m in messages if m.is_final]
    assert [f.reason for f in finals] == [FinalReason.EOU, FinalReason.CLOSE]
    eou, last = finals
    # Partials of the turn came first, growing, and none after its final.
    partials = [m for m in messages if not m.is_final]
    assert partials and all(p.turn == eou.turn for p in partials)
    assert messages.index(eou) > messages.index(partials[-1])
    assert len(partials[-1].transcript.words) >= len(partials[0].transcript.words)
    # The final is the model's final-quality answer for the whole turn (its speculative
    # pass, reused when nothing was said after it), not a partial's guess.
    whole_turn = [j for j in decoder.jobs if j.is_final][-1]
    expected = "".join(w.text for w in words_for(whole_turn.audio.size)).strip()
    assert eou.transcript.text == expected and len(expected.split()) >= 5
    # The turn is closed by the VAD's events around it; the stream ends with an empty last.
    vad = [e.kind for e in events if isinstance(e, VadEvent)]
    assert vad[0] == "speech_started" and "speech_ended" in vad
    assert events[-1] is last and last.is_last and last.transcript.text == ""
    assert not eou.is_last and not eou.from_finalize


def test_finalize_gives_exactly_one_final_and_the_stream_goes_on(
    speech: bytes, pool: ThreadPoolExecutor
) -> None:
    half = len(speech) // 4 // FRAME_BYTES * FRAME_BYTES  # mid-speech

    async def script(live: LiveStream) -> None:
        await feed_frames(live, speech[:half])
        await live.finalize()
        await feed_frames(live, speech[half:])
        await live.close(0.0)

    events, _ = run(stream_params(), script, pool)
    finals = [m for m in transcripts(events) if m.is_final]
    from_finalize = [f for f in finals if f.from_finalize]
    assert len(from_finalize) == 1
    assert from_finalize[0].reason is FinalReason.FINALIZE and from_finalize[0].transcript.text
    assert finals[-1].is_last
    # What was said after the finalize is a new turn with its own final.
    later = [f for f in finals if f.turn > from_finalize[0].turn and f.transcript.text]
    assert later


def test_max_words_ends_the_turn_at_the_limit(speech: bytes, pool: ThreadPoolExecutor) -> None:
    async def script(live: LiveStream) -> None:
        await feed_frames(live, speech)
        await live.close(0.0)

    events, _ = run(stream_params(max_words="3"), script, pool)
    finals = [m for m in transcripts(events) if m.is_final]
    cut = [f for f in finals if f.reason is FinalReason.MAX_WORDS]
    assert cut, [f.reason for f in finals]
    # The turn went on after the cut: the rest of the clip came as further turns.
    assert len([f for f in finals if f.transcript.text]) >= 2


def test_close_without_audio_sends_one_empty_last(pool: ThreadPoolExecutor) -> None:
    async def script(live: LiveStream) -> None:
        await live.close(0.0)

    events, decoder = run(stream_params(full_transcript="true"), script, pool)
    assert len(events) == 1
    (last,) = transcripts(events)
    assert last.is_last and last.is_final and last.transcript.text == ""
    assert last.full_transcript == "" and decoder.jobs == []


def test_full_transcript_joins_the_finals(speech: bytes, pool: ThreadPoolExecutor) -> None:
    async def script(live: LiveStream) -> None:
        await feed_frames(live, speech)
        await feed_frames(live, speech)
        await live.close(0.0)

    events, _ = run(stream_params(full_transcript="true"), script, pool)
    finals = [m for m in transcripts(events) if m.is_final and m.transcript.text]
    assert len(finals) == 2
    assert finals[-1].full_transcript == " ".join(f.transcript.text for f in finals)


def test_a_failed_final_pass_is_reported_then_the_final_is_sent_empty(
    speech: bytes, pool: ThreadPoolExecutor
) -> None:
    async def script(live: LiveStream) -> None:
        await feed_frames(live, speech[: len(speech) // 2 // FRAME_BYTES * FRAME_BYTES])
        await live.finalize()
        await live.close(0.0)

    events, _ = run(stream_params(), script, pool, FakeDecoder(fail_finals=True))
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert [e.kind for e in errors] == [ErrorKind.ENGINE_ERROR]
    finalized = next(m for m in transcripts(events) if m.from_finalize)
    assert events.index(errors[0]) == events.index(finalized) - 1  # said, then the final
    assert finalized.transcript.text == ""


def test_undecodable_audio_is_an_error_event_and_the_stream_goes_on(
    pool: ThreadPoolExecutor,
) -> None:
    async def script(live: LiveStream) -> None:
        assert await live.feed(b"definitely not an ogg stream" * 40, 0.0)
        await live.close(0.0)

    events, _ = run(stream_params(encoding="ogg_opus"), script, pool)
    assert isinstance(events[0], ErrorEvent) and events[0].kind is ErrorKind.BAD_AUDIO
    assert "ogg_opus" in events[0].message
    assert isinstance(events[-1], TranscriptEvent) and events[-1].is_last


def test_abandon_ends_delivery_and_frees_what_is_owed(
    speech: bytes, pool: ThreadPoolExecutor
) -> None:
    async def main() -> tuple[list[LiveEvent] | None, bool]:
        live = LiveStream("s-1", stream_params(), LiveServices(FakeDecoder(), pool))
        await live.feed(speech[: 40 * FRAME_BYTES], 0.0)
        live.abandon()
        return await live.next_events(), await live.room()

    assert asyncio.run(main()) == (None, False)


def test_stream_params_word_limit() -> None:
    assert stream_params(max_words="4").word_limit == 4
    assert stream_params(max_words="4", finalize_on_words="false").word_limit is None
    assert replace(stream_params(), max_words=None).word_limit is None


class HeldPartials(FakeDecoder):
    """Final-quality passes answer at once; plain partials stay undecided until `release`
    (a partial pass still occupying the worker when the turn ends)."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list[tuple[DecodeJob, Future[Hypothesis | None]]] = []

    def submit(self, job: DecodeJob) -> Future[Hypothesis | None]:
        if job.kind.final_quality:
            return super().submit(job)
        with self.lock:
            self.jobs.append(job)
        future: Future[Hypothesis | None] = Future()
        self.held.append((job, future))
        return future

    def release(self) -> None:
        for job, future in self.held:
            words = words_for(job.audio.size)
            future.set_result(Hypothesis("".join(w.text for w in words), words, language="en"))


def test_the_turns_final_does_not_wait_for_a_partial_still_decoding(
    speech: bytes, pool: ThreadPoolExecutor
) -> None:
    decoder = HeldPartials()

    async def main() -> list[LiveEvent]:
        params = stream_params(endpointing="true", endpointing_timeout="300")
        live = LiveStream("s-1", params, LiveServices(decoder=decoder, dsp_pool=pool))
        events: list[LiveEvent] = []
        got_final = asyncio.Event()

        async def consume() -> None:
            while (batch := await live.next_events()) is not None:
                events.extend(batch)
                if any(isinstance(e, TranscriptEvent) and e.is_final for e in batch):
                    got_final.set()

        consumer = asyncio.create_task(consume())
        for i in range(0, len(speech), 3200):  # 100 ms frames
            assert await live.feed(speech[i : i + 3200], 0.0)
        assert decoder.held, "partial passes were asked for"
        # The final comes while the turn's partial passes are still undecided.
        await asyncio.wait_for(got_final.wait(), 10)
        decoder.release()
        await live.close(0.0)
        await asyncio.wait_for(consumer, 10)
        return events

    messages = transcripts(asyncio.run(main()))
    eou = next(m for m in messages if m.is_final)
    assert eou.reason is FinalReason.EOU and eou.transcript.text
    # Nothing of that turn after its final: the superseded partials are never shown.
    assert all(m.is_final for m in messages[messages.index(eou) :])


class ProvisionalGuesses(FakeDecoder):
    """Every speculative pass comes back provisional (its short window looked bad)."""

    def submit(self, job: DecodeJob) -> Future[Hypothesis | None]:
        future = super().submit(job)
        if job.speculative:
            hyp = future.result()
            assert hyp is not None
            redo: Future[Hypothesis | None] = Future()
            redo.set_result(replace(hyp, provisional=True))
            return redo
        return future


def test_a_provisional_speculation_is_redone_on_the_full_window_once_the_turn_ends(
    speech: bytes, pool: ThreadPoolExecutor
) -> None:
    async def script(live: LiveStream) -> None:
        await feed_frames(live, speech)
        await live.close(0.0)

    events, decoder = run(stream_params(), script, pool, ProvisionalGuesses())
    assert any(j.speculative for j in decoder.jobs)
    eou = next(m for m in transcripts(events) if m.is_final)
    assert eou.reason is FinalReason.EOU and eou.transcript.text
    # the turn's final was decoded again, straight on the full window
    [redo] = [j for j in final_jobs(decoder) if j.audio.size]
    assert redo.full_window
