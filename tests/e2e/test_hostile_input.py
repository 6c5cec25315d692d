"""Hostile input against the real server: adversarial REST bodies, random WebSocket frames
in every encoding, and small inputs that expand into hours of audio. The server answers
each with a clear error (or what it could decode), never crashes, keeps its memory, and
serves the next caller as before.

The property tests of each piece (decoders, parsers, the REST app on a stand-in engine)
are in tests/unit; here the same kinds of input go through real sockets.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import websockets

from tests.support.audio import Clip, encode_file, join, pcm16, silence, wer
from tests.support.client import chunks, play
from tests.support.hostile_inputs import low_rate_wav, ogg_opus_bomb
from tests.support.prometheus import scrape_samples, value
from tests.support.server import Server, running_server
from tests.support.soak import process_usage

STT = "/waves/v1/stt/"
ENCODINGS = ("linear16", "linear32", "alaw", "mulaw", "opus", "ogg_opus")
MESSAGE_TYPES = {"transcription", "error", "warning", "speech_started", "speech_ended"}


def post(server: Server, body: bytes, content_type: str = "audio/wav") -> httpx.Response:
    return httpx.post(
        f"{server.http}{STT}?model=pulse&language=en",
        content=body,
        headers={**server.headers(), "Content-Type": content_type},
        timeout=120,
    )


def words(text: str) -> list[str]:
    text = re.sub(r"\bmr\b\.?", "mister", text.lower())
    return re.sub(r"[^\w' ]", " ", text).split()


def clear_error(response: httpx.Response, status: int, error: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["status"] == "error" and body["error"] == error, body
    assert len(body["message"]) > 20
    return str(body["message"])


# -- REST bodies -------------------------------------------------------------------------


def test_a_wav_header_claiming_gigabytes_transcribes_what_is_there(
    server: Server, clips: list[Clip]
) -> None:
    wav = encode_file(clips[2].audio, "wav", "pcm_s16le")
    data_at = wav.index(b"data") + 4
    lying = wav[:data_at] + struct.pack("<I", 0xFFFFFFF0) + wav[data_at + 4 :]
    lying = lying[:4] + struct.pack("<I", 0xFFFFFFF8) + lying[8:]  # RIFF size too
    response = post(server, lying)
    assert response.status_code == 200, response.text
    body = response.json()
    assert abs(body["metadata"]["duration"] - clips[2].audio.size / 16000) < 0.1
    assert wer(clips[2].text, body["transcription"]) < 0.15


def test_truncated_containers_give_their_audio_or_a_clear_400(
    server: Server, clips: list[Clip]
) -> None:
    audio = join(clips[0].audio, silence(0.5))
    for fmt, codec in (("flac", "flac"), ("ogg", "libopus"), ("mp3", "libmp3lame")):
        whole = encode_file(audio, fmt, codec)
        for keep in (0.02, 0.5, 0.97):
            response = post(server, whole[: int(len(whole) * keep)])
            if response.status_code == 200:  # what arrived: words of the clip, nothing else
                heard = words(response.json()["transcription"])
                assert set(heard[:-1]) <= set(words(clips[0].text)), (fmt, keep, heard)
            else:
                assert "send a WAV" in clear_error(response, 400, "bad_audio")


def test_an_mp3_header_followed_by_garbage_is_a_clear_400(server: Server) -> None:
    rng = random.Random(3)
    id3 = b"ID3\x03\x00\x00\x00\x00\x00\x0a" + bytes(10)
    frame_header = b"\xff\xfb\x90\x64"  # MPEG-1 layer III, 128 kbit/s, 44.1 kHz
    body = id3 + b"".join(frame_header + rng.randbytes(413) for _ in range(30))
    response = post(server, body, "audio/mpeg")
    if response.status_code == 200:  # FFmpeg may decode garbage frames as noise: no words
        assert response.json()["transcription"] == ""
    else:
        clear_error(response, 400, "bad_audio")


def test_hostile_json_bodies_get_clear_400s(server: Server) -> None:
    nested = ("[" * 30_000 + "]" * 30_000).encode()
    assert "not valid JSON" in clear_error(
        post(server, nested, "application/json"), 400, "bad_request"
    )
    for url in ("gopher://127.0.0.1:70/_GET", "file:///etc/passwd", "dict://localhost:11211/"):
        body = json.dumps({"url": url}).encode()
        message = clear_error(post(server, body, "application/json"), 400, "bad_request")
        assert "http://" in message and "https://" in message


def test_a_huge_declared_length_is_refused_before_the_body(server: Server) -> None:
    request = (
        f"POST {STT}?model=pulse HTTP/1.1\r\nHost: {server.host}\r\n"
        f"Authorization: Bearer {server.key}\r\nContent-Type: audio/wav\r\n"
        f"Content-Length: {10**12}\r\n\r\n"
    ).encode()
    with socket.create_connection((server.host, server.port), timeout=30) as sock:
        sock.sendall(request + b"RIFF")  # 4 bytes of a terabyte, then nothing
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            piece = sock.recv(4096)
            if not piece:
                break
            answer += piece
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), head
    assert json.loads(body)["error"] == "too_large"


# -- WebSocket frames --------------------------------------------------------------------


def random_json(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["null", "bool", "int", "float", "str"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "list":
        return [random_json(rng, depth + 1) for _ in range(rng.randrange(4))]
    if kind == "dict":
        keys = ["type", "text", "finalize", "close_stream", "", "é"]
        return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randrange(4))}
    return {
        "null": None,
        "bool": rng.random() < 0.5,
        "int": rng.randrange(-(2**40), 2**40),
        "float": rng.uniform(-1e9, 1e9),
        "str": "".join(chr(rng.randrange(32, 0x2FFF)) for _ in range(rng.randrange(12))),
    }[kind]


def random_text_frame(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.4:
        return json.dumps(random_json(rng))
    if roll < 0.6:
        return json.dumps({"type": rng.choice(["finalise", "close", "END", "flush", 7, None])})
    return "".join(chr(rng.randrange(1, 0xD7FF)) for _ in range(rng.randrange(0, 300)))


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_random_frames_get_errors_and_the_session_still_ends_cleanly(
    server: Server, clips: list[Clip], encoding: str
) -> None:
    rng = random.Random(f"ws-fuzz-{encoding}")
    steps: list[Any] = []
    finalizes = 0
    for _ in range(40):
        roll = rng.random()
        if roll < 0.55:
            steps.append(rng.randbytes(rng.choice([0, 1, 2, 3, 17, 160, 4096, 65536 - 1, 65536])))
        elif roll < 0.9:
            steps.append(random_text_frame(rng))
        else:
            steps.append({"type": "finalize"})
            finalizes += 1
        steps.append(0.03)
    steps.append({"type": "close_stream"})
    got = play(server, f"model=pulse&language=en&encoding={encoding}&sample_rate=16000", steps)
    assert got.close_code == 1000
    assert all(m.get("type") in MESSAGE_TYPES for m in got.messages), got.messages
    errors = got.of_type("error")
    assert errors, "no bad frame was answered"
    assert all(len(e["message"]) > 20 for e in errors)
    assert {e["error"] for e in errors} <= {"bad_message", "bad_audio"}
    finals = got.finals
    assert sum(1 for m in finals if m["from_finalize"]) == finalizes
    assert finals[-1]["is_last"] and sum(1 for m in finals if m["is_last"]) == 1
    assert got.messages[-1] is finals[-1]
    # Afterwards the server serves a caller as before.
    after = play(
        server,
        "model=pulse&language=en&encoding=linear16&sample_rate=16000",
        [*chunks(pcm16(clips[1].audio)), {"type": "close_stream"}],
    )
    assert wer(clips[1].text, after.final_text) < 0.15


# -- Small inputs that expand into hours (a server of their own, with its RSS watched) ----


@pytest.fixture(scope="module")
def bomb_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("bombs"), max_file_audio_s="120") as running:
        yield running
    log = running.log.read_text()
    assert "Traceback" not in log and '"level": "ERROR"' not in log, log[-3000:]


def rss(pid: int) -> int:
    """Resident bytes of a process."""
    return process_usage(pid)[0]


class PeakRss:
    """The highest RSS of a process while the `with` block runs, sampled every 50 ms."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss(self.pid))
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_a_tiny_wav_declaring_1_hz_is_refused_at_the_audio_limit(
    bomb_server: Server, clips: list[Clip]
) -> None:
    bomb = low_rate_wav(1, bytes(range(256)) * 200)  # 51 kB: 14 hours of audio
    started = time.monotonic()
    message = clear_error(post(bomb_server, bomb), 413, "too_long")
    assert "120 s" in message and time.monotonic() - started < 30
    ok = post(bomb_server, encode_file(clips[0].audio, "flac", "flac"))
    assert ok.status_code == 200 and wer(clips[0].text, ok.json()["transcription"]) < 0.15


def test_an_ogg_opus_frame_of_an_hour_keeps_the_servers_memory(
    bomb_server: Server, clips: list[Clip]
) -> None:
    bomb, seconds = ogg_opus_bomb(120)  # 96 kB in one frame: 61 minutes of audio
    query = "model=pulse&language=en&encoding=ogg_opus&sample_rate=48000"

    async def send_bomb() -> tuple[list[dict[str, Any]], int | None]:
        async with websockets.connect(
            f"{bomb_server.ws}/waves/v1/stt/live?{query}",
            additional_headers=bomb_server.headers(),
        ) as ws:
            await ws.send(bomb)
            await ws.send(json.dumps({"type": "close_stream"}))
            messages = [json.loads(m) async for m in ws]
            return messages, ws.close_code

    before = rss(bomb_server.pid)
    with PeakRss(bomb_server.pid) as peak:
        messages, code = asyncio.run(asyncio.wait_for(send_bomb(), 240))
    # All of it at once would be 700 MB of float32 at 48 kHz (and 230 MB more resampled).
    assert peak.peak - before < 200 * 2**20, (before, peak.peak)
    assert code == 1000 and messages[-1]["is_last"], messages[-3:]
    metrics = scrape_samples(bomb_server.http)
    streamed = value(metrics, "pulse_stt_audio_seconds_total", kind="stream")
    assert streamed == pytest.approx(seconds, abs=1.0)  # every piece was decoded
    after = play(
        bomb_server,
        "model=pulse&language=en&encoding=linear16&sample_rate=16000",
        [*chunks(pcm16(clips[3].audio)), {"type": "close_stream"}],
    )
    assert wer(clips[3].text, after.final_text) < 0.15


def test_a_300_mib_chunked_upload_is_not_held_in_memory(bomb_server: Server) -> None:
    """Issue 20 row 3: a REST body is spooled to a temporary file, not held in memory (it
    was held whole, twice: a 300 MiB upload raised RSS by 582 MB)."""
    size = 300 * 2**20
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + size)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 16000, 32000, 2, 16)
        + b"data"
        + struct.pack("<I", size)
    )
    block = bytes(2**20)  # silence, sent 300 times: never held by the test either

    def body() -> Iterator[bytes]:  # a generator: sent chunked, without a Content-Length
        yield header
        for _ in range(size // len(block)):
            yield block

    before = rss(bomb_server.pid)
    with PeakRss(bomb_server.pid) as peak:
        response = httpx.post(
            f"{bomb_server.http}{STT}?model=pulse&language=en",
            content=body(),
            headers={**bomb_server.headers(), "Content-Type": "audio/wav"},
            timeout=300,
        )
    print(f"300 MiB upload: RSS {before / 2**20:.0f} MiB -> peak {peak.peak / 2**20:.0f} MiB")
    clear_error(response, 413, "too_long")  # 9830 s of silence: over this server's 120 s
    assert peak.peak - before < 100 * 2**20, (before, peak.peak)
