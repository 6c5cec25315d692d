"""Multichannel audio without a server: de-interleaving, the parameters, whole files kept
channel by channel, the live fan-out over one `LiveStream` per channel (real session, a
stand-in engine), the REST body's channel tags and the admission weight of a stream."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import cast

import numpy as np
import pytest

from pulse_stt.api.admission import SessionSlots, Slot
from pulse_stt.api.params import ParamError, parse_file_params, parse_stream_params
from pulse_stt.api.schemas import event_message, file_response
from pulse_stt.audio.container import (
    AudioTooLongError,
    TooManyChannelsError,
    iter_file_audio,
    iter_file_channels,
)
from pulse_stt.audio.pcm import Deinterleaver
from pulse_stt.engine.engine import Engine
from pulse_stt.protocol import MODEL_RATE, FinalReason, TextOptions
from pulse_stt.stream.channels import ChannelStreams, open_stream
from pulse_stt.stream.events import LiveEvent, TranscriptEvent, VadEvent
from pulse_stt.stream.file import transcribe_audio_chunks
from pulse_stt.stream.live import LiveServices, LiveStream
from pulse_stt.text.format import TimedWord, Transcript, Utterance
from tests.support.audio import wav_frames
from tests.unit.test_live import FakeDecoder, stream_params, transcripts


def interleave(*channels: np.ndarray) -> np.ndarray:
    """Samples of equal-length channels, interleaved sample by sample."""
    return np.stack(channels, axis=1).reshape(-1)


# -- de-interleaving ---------------------------------------------------------------------


def test_deinterleave_keeps_a_partial_sample_frame_for_the_next_message() -> None:
    left = np.arange(0, 100, dtype="<i2")
    right = np.arange(1000, 1100, dtype="<i2")
    data = interleave(left, right).tobytes()
    split = Deinterleaver("linear16", 2)
    got: list[list[bytes]] = []
    for size in (1, 2, 3, 5, 7, 11, 171):  # cuts inside samples and inside sample frames
        got.append(split.split(data[:size]))
        data = data[size:]
    got.append(split.split(data))
    ours = [np.frombuffer(b"".join(p[c] for p in got), dtype="<i2") for c in range(2)]
    np.testing.assert_array_equal(ours[0], left)
    np.testing.assert_array_equal(ours[1], right)
    assert got[0] == [b"", b""]  # one byte: nothing whole yet


@pytest.mark.parametrize(("encoding", "width"), [("mulaw", 1), ("alaw", 1), ("linear32", 4)])
def test_deinterleave_other_widths(encoding: str, width: int) -> None:
    frames = np.arange(3 * 40 * width, dtype=np.uint8).reshape(40, 3 * width)
    parts = Deinterleaver(encoding, 3).split(frames.tobytes())
    for channel in range(3):
        assert parts[channel] == frames[:, channel * width : (channel + 1) * width].tobytes()


def test_deinterleave_skips_a_wav_header_before_splitting() -> None:
    frames = np.stack([np.full(50, 7), np.full(50, -7)], axis=1)
    left, right = Deinterleaver("linear16", 2).split(wav_frames(frames))
    assert set(np.frombuffer(left, "<i2")) == {7} and set(np.frombuffer(right, "<i2")) == {-7}


# -- parameters --------------------------------------------------------------------------


def test_channels_parameter() -> None:
    assert stream_params().channels == 1
    assert stream_params(channels="2").channels == 2
    assert stream_params(channels="8", encoding="mulaw", sample_rate="8000").channels == 8
    for bad in ("0", "65", "two", "-1"):
        with pytest.raises(ParamError) as caught:
            stream_params(channels=bad)
        assert caught.value.param == "channels" and "1 to 64" in caught.value.message


@pytest.mark.parametrize("encoding", ["opus", "ogg_opus"])
def test_channels_over_one_refuse_encodings_without_interleaved_samples(encoding: str) -> None:
    with pytest.raises(ParamError) as caught:
        stream_params(channels="2", encoding=encoding, sample_rate="48000")
    error = caught.value.to_json()
    assert error["param"] == "channels" and error["error"] == "invalid_parameter"
    assert "linear16" in error["message"] and "one stream per channel" in error["message"]
    assert stream_params(channels="1", encoding=encoding, sample_rate="48000").channels == 1


def test_multichannel_parameter() -> None:
    base = {"model": "pulse"}
    assert not parse_file_params(base, legacy_path=False).multichannel
    assert parse_file_params({**base, "multichannel": "true"}, legacy_path=False).multichannel
    assert parse_file_params({"multichannel": "TRUE"}, legacy_path=True).multichannel
    with pytest.raises(ParamError) as caught:
        parse_file_params({**base, "multichannel": "yes"}, legacy_path=False)
    assert caught.value.param == "multichannel"


def test_stream_params_without_channels_are_unchanged() -> None:
    query = {"model": "pulse", "encoding": "linear16", "sample_rate": "16000"}
    assert parse_stream_params(query, legacy_path=False).channels == 1


# -- whole files -------------------------------------------------------------------------


def test_file_channels_are_kept_apart_and_resampled() -> None:
    t = np.arange(8000) / 8000
    frames = np.stack([np.sin(2 * np.pi * 300 * t), np.zeros_like(t)], axis=1) * 8000
    chunks = list(iter_file_channels(wav_frames(frames, 8000), max_channels=8))
    audio = np.concatenate(chunks, axis=1)
    assert audio.shape[0] == 2 and abs(audio.shape[1] - MODEL_RATE) <= 64
    assert audio.dtype == np.float32
    assert np.abs(audio[0]).max() > 0.2 and np.abs(audio[1]).max() < 1e-3
    # Without multichannel the same file is one downmixed channel, as before.
    mono = np.concatenate(list(iter_file_audio(wav_frames(frames, 8000))))
    assert mono.ndim == 1 and abs(mono.size - audio.shape[1]) <= 64


def test_mono_file_with_multichannel_is_channel_zero() -> None:
    chunks = list(iter_file_channels(wav_frames(np.zeros((1600, 1))), max_channels=8))
    assert all(c.shape[0] == 1 for c in chunks)


def test_too_many_channels_are_refused_before_decoding() -> None:
    with pytest.raises(TooManyChannelsError) as caught:
        list(iter_file_channels(wav_frames(np.zeros((1600, 3))), max_channels=2))
    message = str(caught.value)
    assert "3 audio channels" in message and "at most 2" in message
    assert "max_channels" in message and "without multichannel=true" in message


def test_the_duration_limit_counts_the_recording_once_not_per_channel() -> None:
    stereo = wav_frames(np.zeros((2 * MODEL_RATE, 2)))  # 2 s, two channels
    assert sum(c.shape[1] for c in iter_file_channels(stereo, max_channels=8, max_seconds=3)) > 0
    with pytest.raises(AudioTooLongError):
        list(iter_file_channels(stereo, max_channels=8, max_seconds=1.5))


def test_each_channel_of_a_file_is_transcribed_on_its_own_in_time_order(
    librivox_clips: list[np.ndarray],
) -> None:
    clip_a, clip_b = (c.astype(np.float32) / 32768 for c in librivox_clips[:2])
    gap = np.zeros(MODEL_RATE * 2, dtype=np.float32)
    first = np.concatenate([clip_a, gap, np.zeros_like(clip_b)])  # speaks first
    second = np.concatenate([np.zeros_like(clip_a), gap, clip_b])  # answers
    stereo = np.stack([second, first])  # channel 0 answers, channel 1 speaks first
    chunks = [stereo[:, i : i + 4096] for i in range(0, stereo.shape[1], 4096)]
    decoder = FakeDecoder()
    params = parse_file_params({"model": "pulse", "multichannel": "true"}, legacy_path=False)
    result = transcribe_audio_chunks(
        chunks, engine=cast(Engine, decoder), params=params, request_id="r-1"
    )
    assert result.channels == 2 and result.duration == pytest.approx(stereo.shape[1] / MODEL_RATE)
    assert [t.channel for t in result.turns][:1] == [1] and {t.channel for t in result.turns} == {
        0,
        1,
    }
    offsets = [t.offset for t in result.turns]
    assert offsets == sorted(offsets)
    assert all(t.offset >= len(clip_a) / MODEL_RATE for t in result.turns if t.channel == 0)
    assert decoder.cancelled == ["r-1"]
    # Each channel cost what it holds: about as many decoded seconds as two mono files.
    decoded = sum(j.audio.size for j in decoder.jobs) / MODEL_RATE
    speech = (len(clip_a) + len(clip_b)) / MODEL_RATE
    assert speech * 0.8 < decoded < speech * 1.5


# -- the REST body -----------------------------------------------------------------------


def _transcript(text: str, start: float) -> Transcript:
    words = tuple(
        TimedWord(w, start + i * 0.5, start + i * 0.5 + 0.4, 0.9)
        for i, w in enumerate(text.split())
    )
    return Transcript(text, words, (Utterance(text, start, words[-1].end),), "en", ("en",))


def test_file_response_tags_words_and_utterances_with_their_channel() -> None:
    options = TextOptions(word_timestamps=True)
    transcripts_ = [_transcript("hello there", 0.5), _transcript("good morning", 1.0)]
    body = file_response(
        transcripts_,
        options=options,
        language="en",
        duration=3.0,
        file_size=10,
        channels=[1, 0],
        num_channels=2,
    )
    assert body["transcription"] == "hello there good morning"
    assert [w["channel"] for w in body["words"]] == [1, 1, 0, 0]
    assert [(u["text"], u["channel"]) for u in body["utterances"]] == [
        ("hello there", 1),
        ("good morning", 0),
    ]
    assert body["channels"] == [
        {"channel": 0, "transcription": "good morning"},
        {"channel": 1, "transcription": "hello there"},
    ]
    assert body["metadata"]["channels"] == 2
    plain = file_response(transcripts_, options=options, language="en", duration=3.0, file_size=10)
    assert "channels" not in plain and "channels" not in plain["metadata"]
    assert all("channel" not in w for w in plain["words"])
    assert all("channel" not in u for u in plain["utterances"])


# -- the live fan-out --------------------------------------------------------------------


@pytest.fixture(scope="module")
def pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2)


def two_speakers(librivox_clips: list[np.ndarray]) -> bytes:
    """Channel 0 speaks, then (after a pause) channel 1: interleaved linear16 bytes."""
    a, b = librivox_clips[0], librivox_clips[1]
    pause = np.zeros(int(1.5 * MODEL_RATE), dtype=np.int16)
    left = np.concatenate([a, pause, np.zeros_like(b), pause])
    right = np.concatenate([np.zeros_like(a), pause, b, pause])
    return interleave(left, right).astype("<i2").tobytes()


async def drive(live: ChannelStreams, script: object) -> list[LiveEvent]:
    events: list[LiveEvent] = []

    async def consume() -> None:
        while (batch := await live.next_events()) is not None:
            events.extend(batch)

    consumer = asyncio.create_task(consume())
    await script(live)  # type: ignore[operator]
    await asyncio.wait_for(consumer, 60)
    return events


def run_channels(
    pool: ThreadPoolExecutor, script: object, **query: str
) -> tuple[list[LiveEvent], FakeDecoder]:
    decoder = FakeDecoder()

    async def main() -> list[LiveEvent]:
        live = open_stream(
            "s-1",
            stream_params(channels="2", **query),
            LiveServices(decoder=decoder, dsp_pool=pool),
        )
        assert isinstance(live, ChannelStreams)
        return await drive(live, script)

    return asyncio.run(main()), decoder


async def feed_odd_frames(live: ChannelStreams, pcm: bytes) -> None:
    size = 1283  # not a whole number of sample frames (4 bytes): the rest carries over
    for i in range(0, len(pcm), size):
        assert await live.room()
        assert await live.feed(pcm[i : i + size], 0.0)


def test_each_channel_gets_its_own_turns_and_is_last_comes_once_after_all(
    librivox_clips: list[np.ndarray], pool: ThreadPoolExecutor
) -> None:
    pcm = two_speakers(librivox_clips)

    async def script(live: ChannelStreams) -> None:
        await feed_odd_frames(live, pcm)
        await live.close(0.0)

    events, decoder = run_channels(pool, script, vad_events="true", word_timestamps="true")
    messages = transcripts(events)
    assert all(m.channel in (0, 1) for m in messages)
    texts = {
        c: [m for m in messages if m.is_final and m.transcript.text and m.channel == c]
        for c in (0, 1)
    }
    assert texts[0] and texts[1]
    # Channel 0's speech ended before channel 1's began.
    assert texts[0][0].transcript.words[0].start < 2.0
    assert texts[1][0].transcript.words[0].start > len(librivox_clips[0]) / MODEL_RATE
    lasts = [m for m in messages if m.is_last]
    assert len(lasts) == 1 and events[-1] is lasts[0]
    # Both channels' close finals went out; only the later one ends the stream.
    closes = [m for m in messages if m.reason is FinalReason.CLOSE]
    assert sorted(m.channel for m in closes) == [0, 1]  # type: ignore[type-var]
    vad = [e for e in events if isinstance(e, VadEvent)]
    assert {e.channel for e in vad} == {0, 1}
    started = {e.channel: e.timestamp for e in vad if e.kind == "speech_started"}
    assert started[0] < started[1]
    # Two engine sessions, one per channel.
    assert {j.session_id for j in decoder.jobs} == {"s-1/0", "s-1/1"}
    # The wire: every transcript message and word carries its channel; the VAD events too.
    options = TextOptions(word_timestamps=True)
    wire = event_message(texts[1][0], "s-1", options)
    assert wire["channel"] == 1 and all(w["channel"] == 1 for w in wire["words"])
    assert event_message(vad[0], "s-1", options)["channel"] == vad[0].channel


def test_finalize_owes_one_final_per_channel(
    librivox_clips: list[np.ndarray], pool: ThreadPoolExecutor
) -> None:
    a = librivox_clips[0][: MODEL_RATE * 2]
    pcm = interleave(a, a[::-1].copy()).astype("<i2").tobytes()  # both speak

    async def script(live: ChannelStreams) -> None:
        await feed_odd_frames(live, pcm)
        await live.finalize()
        await live.close(0.0)

    events, _ = run_channels(pool, script)
    finals = [m for m in transcripts(events) if m.is_final]
    assert sorted(m.channel for m in finals if m.from_finalize) == [0, 1]  # type: ignore[type-var]
    assert len([m for m in finals if m.is_last]) == 1 and finals[-1].is_last


def test_close_without_audio_sends_one_last_for_the_stream(pool: ThreadPoolExecutor) -> None:
    async def script(live: ChannelStreams) -> None:
        await live.feed(b"\x01", 0.0)  # not even one sample: carried, never decoded
        await live.close(0.0)

    events, decoder = run_channels(pool, script)
    messages = transcripts(events)
    assert len(messages) == 2 and [m.is_last for m in messages] == [False, True]
    assert decoder.jobs == []


def test_one_channel_is_a_plain_live_stream(pool: ThreadPoolExecutor) -> None:
    params = stream_params()
    live = open_stream("s", params, LiveServices(decoder=FakeDecoder(), dsp_pool=pool))
    assert isinstance(live, LiveStream)
    message = event_message(
        TranscriptEvent(0, _transcript("hi", 0.0), True, FinalReason.CLOSE),
        "s",
        TextOptions(word_timestamps=True),
    )
    assert "channel" not in message and "channel" not in message["words"][0]
    assert message["is_last"] is True


# -- admission ---------------------------------------------------------------------------


def test_a_stream_of_n_channels_holds_n_slots() -> None:
    slots = SessionSlots(max_total=10, max_per_key=4)
    two = slots.take(1, weight=2)
    assert isinstance(two, Slot) and slots.held_by(1) == 2 and slots.total == 2
    assert slots.take(1, weight=3) == "key_limit"
    one = slots.take(1, weight=2)
    assert isinstance(one, Slot) and slots.held_by(1) == 4
    two.release()
    one.release()
    assert slots.total == 0 and slots.held_by(1) == 0
    # Heavier than a limit: needs that whole limit free, is never refused for good.
    wide = slots.take(2, weight=8)
    assert isinstance(wide, Slot) and slots.held_by(2) == 8
    assert slots.take(2) == "key_limit"
    wide.release()
    assert slots.total == 0


# -- our client --------------------------------------------------------------------------


def test_the_client_sends_the_options_and_reads_the_channel() -> None:
    from pulse_stt.client.messages import Transcription, Utterance, Word
    from pulse_stt.client.options import FileOptions, StreamOptions

    assert FileOptions(multichannel=True).to_query()["multichannel"] == "true"
    assert "multichannel" not in FileOptions().to_query()
    assert StreamOptions(channels=2).to_query()["channels"] == "2"
    assert Word.from_dict({"word": "hi", "start": 0, "end": 1, "channel": 1}).channel == 1
    assert Utterance.from_dict({"text": "hi", "start": 0, "end": 1}).channel is None
    message = {"type": "transcription", "transcript": "hi", "is_final": True, "channel": 1}
    assert Transcription.from_dict(message).channel == 1
