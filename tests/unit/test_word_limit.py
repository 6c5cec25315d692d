"""`max_words` as a hard cap (issue 17, item 4): `WordLimit` on its own, and `LiveStream`
(real session, a stand-in engine that knows where every word of the stream lies) fed at
real-time pace and in one burst."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pytest

from pulse_stt.engine.types import DecodeJob, Hypothesis, Word
from pulse_stt.protocol import MODEL_RATE, FinalReason
from pulse_stt.stream.events import LiveEvent, TranscriptEvent, VadEvent
from pulse_stt.stream.live import LiveServices, LiveStream
from pulse_stt.stream.word_limit import WordLimit, written_words
from pulse_stt.text.tokens import Token
from tests.unit.test_live import FRAME_BYTES, drive, stream_params, transcripts

WORD_STEP_S = 0.35  # the stand-in engine hears a word every 0.35 s of the stream


def tok(text: str, start: float, glued: bool = False) -> Token:
    return Token(text, start, start + 0.2, 0.9, glued)


def words_of(n: int, first: int = 0) -> list[Token]:
    return [tok(f"w{i}", i * WORD_STEP_S) for i in range(first, first + n)]


def texts(tokens: tuple[Token, ...] | list[Token]) -> list[str]:
    return [t.text for t in tokens]


# -- WordLimit ----------------------------------------------------------------------------


def test_a_turn_ending_final_is_split_into_pieces_of_n_its_last_keeps_the_reason() -> None:
    limit = WordLimit(8)
    pieces = limit.final(words_of(20), FinalReason.EOU)
    assert [len(p.tokens) for p in pieces] == [8, 8, 4]
    assert [p.reason for p in pieces] == [FinalReason.MAX_WORDS] * 2 + [FinalReason.EOU]
    assert [t for p in pieces for t in texts(p.tokens)] == [f"w{i}" for i in range(20)]
    assert limit.carry == ()


def test_a_cut_carries_its_short_remainder_into_the_next_final() -> None:
    limit = WordLimit(8)
    pieces = limit.final(words_of(19), FinalReason.MAX_LENGTH)
    assert [len(p.tokens) for p in pieces] == [8, 8]
    assert all(p.reason is FinalReason.MAX_WORDS for p in pieces)
    assert texts(limit.carry) == ["w16", "w17", "w18"]
    # A cut with fewer than N words in all sends nothing: everything is carried.
    assert limit.final(words_of(2, first=19), FinalReason.MAX_WORDS) == []
    assert texts(limit.carry) == ["w16", "w17", "w18", "w19", "w20"]
    # The partial shows the carried words first, capped at N.
    shown, cut = limit.partial(words_of(2, first=21))
    assert texts(shown) == [f"w{i}" for i in range(16, 23)] and cut is None
    shown, cut = limit.partial(words_of(5, first=21))
    assert texts(shown) == [f"w{i}" for i in range(16, 24)]
    # The cut lies between the 8th word shown (w23) and the next one (w24).
    assert cut == pytest.approx((23 * WORD_STEP_S + 0.2 + 24 * WORD_STEP_S) / 2, abs=1e-3)
    (last,) = limit.final(words_of(1, first=21), FinalReason.CLOSE)
    assert texts(last.tokens) == ["w16", "w17", "w18", "w19", "w20", "w21"]
    assert last.reason is FinalReason.CLOSE and limit.carry == ()


def test_an_empty_turn_end_is_still_sent_and_an_exact_cut_carries_nothing() -> None:
    limit = WordLimit(3)
    assert [(p.tokens, p.reason) for p in limit.final([], FinalReason.FINALIZE)] == [
        ((), FinalReason.FINALIZE)
    ]
    assert len(limit.final(words_of(6), FinalReason.MAX_WORDS)) == 2 and limit.carry == ()


def test_a_partial_reaching_n_words_cuts_after_its_last_word() -> None:
    shown, cut = WordLimit(3).partial(words_of(3))
    assert len(shown) == 3 and cut == pytest.approx(2 * WORD_STEP_S + 0.2 + 0.1, abs=1e-3)


def test_words_are_counted_as_written() -> None:
    # "$23.50" written from glued tokens is one word, as the client counts it.
    tokens = [tok("pay", 0.0), tok("$23", 0.5), tok(".50", 0.7, glued=True), tok("now", 1.0)]
    assert [len(w) for w in written_words(tokens)] == [1, 2, 1]
    (first, second) = WordLimit(2).final(tokens, FinalReason.EOU)
    assert texts(first.tokens) == ["pay", "$23", ".50"] and texts(second.tokens) == ["now"]


def test_no_limit_passes_everything_through() -> None:
    limit = WordLimit(None)
    assert len(limit.final(words_of(50), FinalReason.MAX_LENGTH)[0].tokens) == 50
    assert limit.partial(words_of(50)) == (tuple(words_of(50)), None)


# -- LiveStream ---------------------------------------------------------------------------


class TimelineDecoder:
    """A stand-in engine that hears word `w<i>` at i * 0.35 s of the stream: a pass over
    some audio returns the words whose middle lies in it, so passes over adjacent audio
    share no word and lose none. It finds where a pass's audio lies in the stream by its
    samples (the stream carries faint noise, so no two places look alike)."""

    def __init__(self, pcm: np.ndarray) -> None:
        self.pcm = pcm
        self.lock = threading.Lock()
        self.finals: list[tuple[DecodeJob, Hypothesis]] = []

    def _locate(self, audio: np.ndarray) -> int:
        samples = np.round(audio * 32768).astype(np.int16)
        key = samples[: min(64, samples.size)]
        for candidate in np.flatnonzero(self.pcm == key[0]):
            if np.array_equal(self.pcm[candidate : candidate + key.size], key):
                return int(candidate)
        raise AssertionError("audio not found in the stream")

    def submit(self, job: DecodeJob) -> Future[Hypothesis | None]:
        start = self._locate(job.audio) / MODEL_RATE
        end = start + job.audio.size / MODEL_RATE
        words = []
        for i in range(int(end / WORD_STEP_S) + 2):
            middle = i * WORD_STEP_S + 0.1
            if start <= middle < end:
                at = i * WORD_STEP_S - start
                words.append(Word(f" w{i}", round(at, 3), round(at + 0.2, 3), 0.9))
        hyp = Hypothesis("".join(w.text for w in words), tuple(words), language="en")
        if job.is_final and not job.speculative:
            with self.lock:
                self.finals.append((job, hyp))
        future: Future[Hypothesis | None] = Future()
        future.set_result(hyp)
        return future

    def promote(self, future: Future[Hypothesis | None]) -> None:
        pass

    def cancel_session(self, session_id: str) -> None:
        pass


@pytest.fixture(scope="module")
def pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2)


def noisy_reading(librivox_clips: list[np.ndarray], seed: int) -> np.ndarray:
    """About 27 s of reading: the five clips with 0.4 s pauses, then 1.5 s of silence;
    faint noise throughout, so `TimelineDecoder` can find any piece of it."""
    pause = np.zeros(int(0.4 * MODEL_RATE), dtype=np.int16)
    audio = np.concatenate([part for clip in librivox_clips for part in (clip, pause)])
    audio = np.concatenate([audio, np.zeros(int(1.1 * MODEL_RATE), dtype=np.int16)])
    noise = np.random.default_rng(seed).integers(-3, 4, audio.size)
    return np.clip(audio.astype(np.int32) + noise, -32768, 32767).astype(np.int16)


@pytest.fixture(scope="module")
def reading(librivox_clips: list[np.ndarray]) -> np.ndarray:
    return noisy_reading(librivox_clips, seed=17)


def _run(
    reading: np.ndarray, pool: ThreadPoolExecutor, frame_bytes: int, **query: str
) -> tuple[list[LiveEvent], TimelineDecoder]:
    decoder = TimelineDecoder(reading)
    data = reading.astype("<i2").tobytes()

    async def script(live: LiveStream) -> None:
        for i in range(0, len(data), frame_bytes):
            assert await live.room()
            assert await live.feed(data[i : i + frame_bytes], 0.0)
            if frame_bytes == FRAME_BYTES:
                await asyncio.sleep(0)  # let partials come back between frames
        await live.close(0.0)

    async def main() -> list[LiveEvent]:
        params = stream_params(**query)
        live = LiveStream("s-1", params, LiveServices(decoder=decoder, dsp_pool=pool))
        return await drive(live, script)

    return asyncio.run(main()), decoder


def _check_cap(events: list[LiveEvent], decoder: TimelineDecoder, limit: int) -> None:
    messages = transcripts(events)
    finals = [m for m in messages if m.is_final]
    counts = [len(f.transcript.text.split()) for f in finals]
    assert max(counts) <= limit, counts
    # Only a turn's last final may be short: every cut inside a turn has exactly N words.
    assert all(c == limit for f, c in zip(finals, counts, strict=True) if not f.speech_final), (
        counts
    )
    assert all(len(p.transcript.text.split()) <= limit for p in messages if not p.is_final)
    # Every word of the turn's audio, once, in order, to the stream's last.
    sent = " ".join(f.transcript.text for f in finals).split()
    first = int(sent[0][1:])
    assert sent == [f"w{i}" for i in range(first, first + len(sent))]
    assert first <= 1
    # (The turn's final may be the pass made at its pause: words "heard" after the
    # speech ended are not.)
    speech_end = decoder.pcm.size / MODEL_RATE - 1.5
    assert int(sent[-1][1:]) >= int(speech_end / WORD_STEP_S) - 2
    assert finals[-1].is_last
    # words[] go with their pieces.
    assert all([w.text for w in f.transcript.words] == f.transcript.text.split() for f in finals)
    assert finals[-1].full_transcript == " ".join(
        f.transcript.text for f in finals if f.transcript.text
    )


def _vad_turns_closed_by_a_speech_final(events: list[LiveEvent]) -> None:
    last_final: TranscriptEvent | None = None
    for event in events:
        if isinstance(event, TranscriptEvent) and event.is_final:
            last_final = event
        if isinstance(event, VadEvent) and event.kind == "speech_ended":
            assert last_final is not None and last_final.speech_final


QUERY = {
    "max_words": "8",
    "eou_timeout_ms": "3000",
    "full_transcript": "true",
    "vad_events": "true",
}


def test_a_burst_gives_no_final_over_max_words(
    reading: np.ndarray, pool: ThreadPoolExecutor
) -> None:
    events, decoder = _run(reading, pool, 10 * MODEL_RATE * 2, **QUERY)
    _check_cap(events, decoder, 8)
    _vad_turns_closed_by_a_speech_final(events)
    # The passes themselves were far over the limit: the split did the work.
    assert max(len(h.text.split()) for _, h in decoder.finals) > 8
    assert all(j.word_timestamps for j, _ in decoder.finals)


def test_real_time_cuts_at_the_nth_word(reading: np.ndarray, pool: ThreadPoolExecutor) -> None:
    events, decoder = _run(reading, pool, FRAME_BYTES, **QUERY)
    _check_cap(events, decoder, 8)
    _vad_turns_closed_by_a_speech_final(events)
    # Partials cut the turn at their 8th word: those passes decode 8 words, no more.
    cuts = [h for j, h in decoder.finals if j.audio.size and len(h.text.split()) == 8]
    assert len(cuts) >= 3, [len(h.text.split()) for _, h in decoder.finals]


def test_without_finalize_on_words_finals_are_whole(
    reading: np.ndarray, pool: ThreadPoolExecutor
) -> None:
    events, _ = _run(reading, pool, 10 * MODEL_RATE * 2, **QUERY, finalize_on_words="false")
    finals = [m for m in transcripts(events) if m.is_final]
    assert max(len(f.transcript.text.split()) for f in finals) > 8
    assert not [f for f in finals if f.reason is FinalReason.MAX_WORDS]
