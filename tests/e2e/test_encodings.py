"""Every streaming encoding, produced by real encoders from real recordings."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from tests.support.audio import (
    Clip,
    join,
    opus_packets,
    opusenc_ogg,
    pcm16,
    silence,
    sox_encode,
    wer,
)
from tests.support.client import Pace, chunks, play, run_script
from tests.support.server import Server

pytestmark = pytest.mark.e2e

CLOSE = {"type": "close_stream"}


def _query(encoding: str, rate: int) -> str:
    return f"model=pulse&language=en&encoding={encoding}&sample_rate={rate}"


def _random_cuts(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 2000)
        out.append(data[i : i + n])
        i += n
    return out


@pytest.fixture(scope="module")
def speech(clips: list[Clip]) -> tuple[object, str]:
    return join(clips[0].audio, silence(0.5), clips[4].audio, silence(1.0)), (
        clips[0].text + " " + clips[4].text
    )


@pytest.mark.parametrize(
    ("encoding", "sox_encoding", "bits", "rate"),
    [
        ("linear32", "signed-integer", 32, 16000),
        ("linear32", "signed-integer", 32, 8000),
        ("mulaw", "mu-law", 8, 8000),
        ("mulaw", "mu-law", 8, 16000),
        ("alaw", "a-law", 8, 8000),
        ("alaw", "a-law", 8, 48000),
    ],
)
def test_pcm_and_g711(server: Server, speech, tmp_path: Path, encoding, sox_encoding, bits, rate):
    audio, reference = speech
    data = sox_encode(audio, rate, sox_encoding, bits, tmp_path)
    # Odd cuts: frames that end mid-sample must be completed by the next frame.
    got = play(server, _query(encoding, rate), [*_random_cuts(data, rate), CLOSE])
    assert got.close_code == 1000 and got.finals[-1]["is_last"]
    assert not got.of_type("error")
    assert wer(reference, got.final_text) <= 0.12, got.final_text


@pytest.mark.parametrize("rate", [16000, 48000])
def test_raw_opus_packets(server: Server, speech, rate: int) -> None:
    audio, reference = speech
    packets = opus_packets(audio, rate)
    got = play(server, _query("opus", rate), [*packets, CLOSE])
    assert not got.of_type("error")
    assert wer(reference, got.final_text) <= 0.12, got.final_text


@pytest.mark.parametrize("rate", [8000, 48000])
def test_ogg_opus_cut_anywhere(server: Server, speech, tmp_path: Path, rate: int) -> None:
    audio, reference = speech
    data = opusenc_ogg(audio, rate, tmp_path)
    got = play(server, _query("ogg_opus", rate), [*_random_cuts(data, 7), CLOSE])
    assert not got.of_type("error")
    assert got.finals[-1]["is_last"] and got.close_code == 1000
    assert wer(reference, got.final_text) <= 0.12, got.final_text


def test_wav_file_sent_as_linear16_skips_the_header(server: Server, clips: list[Clip], tmp_path):
    from tests.support.audio import write_wav

    clip = clips[2]
    write_wav(clip.audio, 16000, tmp_path / "a.wav")
    got = play(
        server, _query("linear16", 16000), [*chunks((tmp_path / "a.wav").read_bytes()), CLOSE]
    )
    assert clip.matches(got.final_text, 0.1)


def test_wrong_encoding_gets_a_clear_error_and_the_session_survives(
    server: Server, clips: list[Clip]
) -> None:
    clip = clips[4]
    # linear16 bytes declared as Ogg/Opus: an error naming the encoding, then a clean end.
    got = play(server, _query("ogg_opus", 16000), [*chunks(pcm16(clip.audio)), CLOSE])
    errors = got.of_type("error")
    assert errors and "ogg_opus" in errors[0]["message"] and "Ogg" in errors[0]["message"]
    assert got.close_code == 1000 and got.finals[-1]["is_last"]
    # Garbage declared as raw Opus: one error per bad packet, never a crash.
    got = play(server, _query("opus", 48000), [b"\xff\xfe\xfd" * 40, b"", b"\x00", CLOSE])
    assert got.of_type("error") and got.close_code == 1000


def test_corrupt_stream_does_not_disturb_another_session(
    server: Server, clips: list[Clip], tmp_path: Path
) -> None:
    import asyncio

    clip = clips[0]
    good_steps = [*chunks(pcm16(join(clip.audio, silence(1.0))), 3200), CLOSE]
    ogg = opusenc_ogg(clips[3].audio, 48000, tmp_path)
    corrupt = bytearray(ogg)
    for i in range(len(corrupt) // 3, len(corrupt) // 3 + 400):
        corrupt[i] ^= 0x5A  # damage pages in the middle
    bad_steps = [*_random_cuts(bytes(corrupt), 3), CLOSE]

    async def both():
        return await asyncio.gather(
            run_script(server, _query("linear16", 16000), good_steps, pace=Pace(32000, 4.0)),
            run_script(server, _query("ogg_opus", 48000), bad_steps),
        )

    good, bad = asyncio.run(both())
    assert clip.matches(good.final_text, 0.1)
    assert good.close_code == 1000 and bad.close_code == 1000
    assert bad.finals[-1]["is_last"]
