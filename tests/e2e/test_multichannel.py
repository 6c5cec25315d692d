"""Multichannel audio end to end (a pulse-stt extension): a call recording with one voice
per channel, through REST `multichannel=true` and a WebSocket opened with `channels=2`."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from tests.support.audio import Clip, join, silence, wav_frames, wer
from tests.support.client import Pace, chunks, play
from tests.support.server import Server

pytestmark = pytest.mark.e2e

STT = "/waves/v1/stt/"
LEGACY = "/waves/v1/pulse/get_text"
MAX_WER = 0.15


def stereo(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """int16 sample frames (samples, 2) of two float32 channels, padded to one length."""
    size = max(left.size, right.size)
    frames = np.zeros((size, 2), dtype=np.float32)
    frames[: left.size, 0], frames[: right.size, 1] = left, right
    return (np.clip(frames, -1, 1) * 32767).astype("<i2")


@pytest.fixture(scope="module")
def call(clips: list[Clip]) -> tuple[np.ndarray, Clip, Clip, float]:
    """Channel 0 says one clip; channel 1 answers with another after it, 1 s later."""
    first, second = clips[1], clips[2]
    answer_at = first.audio.size / 16_000 + 1.0
    left = join(
        first.audio,
        silence(answer_at - first.audio.size / 16_000 + second.audio.size / 16_000 + 1.0),
    )
    right = join(silence(answer_at), second.audio, silence(1.0))
    return stereo(left, right), first, second, answer_at


def post(server: Server, path: str, body: bytes, query: str) -> httpx.Response:
    return httpx.post(
        f"{server.http}{path}?{query}",
        content=body,
        headers={**server.headers(), "Content-Type": "audio/wav"},
        timeout=300,
    )


def test_rest_multichannel_puts_each_voice_on_its_channel(server: Server, call) -> None:
    frames, first, second, answer_at = call
    response = post(
        server,
        STT,
        wav_frames(frames),
        "model=pulse&language=en&multichannel=true&word_timestamps=true",
    )
    assert response.status_code == 200, response.text
    data = response.json()
    words = data["words"]
    assert words and all(w["channel"] in (0, 1) for w in words)
    on = {c: " ".join(w["word"] for w in words if w["channel"] == c) for c in (0, 1)}
    assert first.matches(on[0], MAX_WER), on
    assert second.matches(on[1], MAX_WER), on
    assert all(w["start"] >= answer_at - 0.3 for w in words if w["channel"] == 1)
    utterances = data["utterances"]
    assert {u["channel"] for u in utterances} == {0, 1}
    assert [u["start"] for u in utterances] == sorted(u["start"] for u in utterances)
    assert utterances[0]["channel"] == 0 and utterances[-1]["channel"] == 1
    # The top-level transcription is the time-ordered join; each channel's is listed too.
    assert wer(first.text + " " + second.text, data["transcription"]) <= MAX_WER
    assert [c["channel"] for c in data["channels"]] == [0, 1]
    assert first.matches(data["channels"][0]["transcription"], MAX_WER)
    assert second.matches(data["channels"][1]["transcription"], MAX_WER)
    # The duration is the recording's, counted once.
    assert data["metadata"]["channels"] == 2
    assert abs(data["metadata"]["duration"] - frames.shape[0] / 16_000) < 0.1


def test_diarize_numbers_speakers_within_each_channel(server: Server, call) -> None:
    frames, *_ = call
    query = "model=pulse&language=en&multichannel=true&word_timestamps=true&diarize=true"
    data = post(server, STT, wav_frames(frames), query).json()
    # One voice per channel: speaker 0 on each; (channel, speaker) names the person.
    assert {(w["channel"], w["speaker"]) for w in data["words"]} == {(0, 0), (1, 0)}
    assert {(u["channel"], u["speaker"]) for u in data["utterances"]} == {(0, 0), (1, 0)}


def test_the_same_stereo_file_without_multichannel_is_mixed_to_mono(server: Server, call) -> None:
    frames, first, second, _ = call
    data = post(server, LEGACY, wav_frames(frames), "language=en&word_timestamps=true").json()
    assert wer(first.text + " " + second.text, data["transcription"]) <= MAX_WER, data
    assert "channels" not in data and "channels" not in data["metadata"]
    assert all("channel" not in w for w in data["words"])
    assert all("channel" not in u for u in data["utterances"])


def test_mono_with_multichannel_is_channel_zero(server: Server, clips: list[Clip]) -> None:
    clip = clips[4]
    frames = (clip.audio.reshape(-1, 1) * 32767).astype("<i2")
    data = post(server, LEGACY, wav_frames(frames), "language=en&multichannel=true").json()
    assert data["channels"][0]["channel"] == 0 and len(data["channels"]) == 1
    assert clip.matches(data["transcription"], MAX_WER), data


def test_more_channels_than_the_server_takes_is_a_clear_400(server: Server) -> None:
    body = wav_frames(np.zeros((8000, 9), dtype="<i2"))
    response = post(server, STT, body, "model=pulse&multichannel=true")
    assert response.status_code == 400
    data = response.json()
    assert data["error"] == "bad_audio"
    assert "9 audio channels" in data["message"] and "max_channels" in data["message"]


def test_streaming_two_channels_gives_finals_per_channel_and_one_is_last(
    server: Server, call
) -> None:
    frames, first, second, answer_at = call
    pcm = frames.tobytes()  # interleaved linear16, 4 bytes a sample frame
    query = "model=pulse&language=en&sample_rate=16000&encoding=linear16&channels=2"
    got = play(
        server,
        query + "&word_timestamps=true&vad_events=true",
        [*chunks(pcm, 6402), {"type": "close_stream"}],  # frames end inside sample frames
        pace=Pace(bytes_per_second=64_000, speed=1.5),
    )
    transcriptions = got.of_type("transcription")
    assert transcriptions and all(m["channel"] in (0, 1) for m in transcriptions)
    assert sum(m["is_last"] for m in transcriptions) == 1
    assert transcriptions[-1]["is_last"] and got.messages[-1] is transcriptions[-1]
    assert got.close_code == 1000
    said = {
        c: " ".join(m["transcript"] for m in got.finals if m["channel"] == c and m["transcript"])
        for c in (0, 1)
    }
    assert first.matches(said[0], MAX_WER), said
    assert second.matches(said[1], MAX_WER), said
    for message in got.finals:
        assert all(w["channel"] == message["channel"] for w in message.get("words", []))
    onsets = {(m["channel"], round(m["timestamp"])) for m in got.of_type("speech_started")}
    assert {c for c, _ in onsets} == {0, 1}
    assert min(t for c, t in onsets if c == 1) >= answer_at - 1
