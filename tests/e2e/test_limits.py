"""End to end: limits, admission control and slow readers, each on a server of its own with
low limits (the shared `server` fixture keeps the production defaults)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets
from websockets.client import ClientProtocol
from websockets.uri import parse_uri

from tests.support.audio import Clip, join, pcm16, silence, wav_bytes, wer
from tests.support.client import LIVE, Pace, Received, Step, chunks, play, send_steps
from tests.support.prometheus import Samples, scrape_samples, value
from tests.support.server import Server, running_server
from tests.support.soak import process_usage

pytestmark = pytest.mark.e2e

Q = "model=pulse&language=en&sample_rate=16000&encoding=linear16"
BYTES_PER_S = 32_000  # 16 kHz 16-bit mono
FINALIZE = {"type": "finalize"}
CLOSE = {"type": "close_stream"}
REST = "/waves/v1/stt/?model=pulse&language=en"


def create_key(server: Server, name: str) -> str:
    """A second API key in the server's database, made with the CLI as an operator would."""
    out = subprocess.run(
        [sys.executable, "-m", "pulse_stt", "keys", "create", "--name", name],
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.splitlines()[1].strip()


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def log_problems(server: Server) -> list[str]:
    lines = server.log.read_text().splitlines()
    return [line for line in lines if "ERROR" in line or "Traceback" in line]


def wait_for(samples_ok: Any, server: Server, timeout: float = 10.0) -> Samples:
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape_samples(server.http)
        if samples_ok(samples) or time.monotonic() > deadline:
            return samples
        time.sleep(0.05)


def active(samples: Samples) -> float:
    return value(samples, "pulse_stt_active_sessions", endpoint="live")


async def stream(
    server: Server,
    steps: Sequence[Step],
    *,
    query: str = Q,
    pace: Pace | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> Received:
    """Like `client.run_script`, but the server may close the session while audio is still
    being sent (a limit ended it): the sender then stops quietly."""
    got = Received()
    url = f"{server.ws}{LIVE}?{query}"
    async with websockets.connect(
        url, additional_headers=headers or server.headers(), max_size=None
    ) as ws:

        async def send() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                await send_steps(ws, steps, pace)

        sender = asyncio.create_task(send())
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                async for raw in ws:
                    got.messages.append(json.loads(raw))
                    got.arrival.append(time.monotonic() - t0)
        except websockets.ConnectionClosed:
            pass
        sender.cancel()
        got.close_code = ws.close_code
    return got


# -- a server with low limits: text frames, session length, per key and in total ----------


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(
        tmp_path_factory.mktemp("limited"),
        max_sessions_per_key="2",
        max_sessions="3",
        max_text_frame_bytes="1024",
        max_session_s="6",
        admission_retry_after_s="7",
    ) as running:
        yield running
    assert not log_problems(running), running.log.read_text()[-5000:]


def test_a_text_frame_over_the_limit_is_answered_and_the_session_goes_on(
    limited: Server, clips: list[Clip]
) -> None:
    clip = clips[0]
    oversized = json.dumps({"type": "finalize", "padding": "x" * 2000})  # valid, but too big
    pcm = pcm16(join(clip.audio, silence(0.5)))
    got = play(limited, Q, [oversized, *chunks(pcm, 3200), CLOSE])
    errors = got.of_type("error")
    assert [e["error"] for e in errors] == ["too_large"], got.messages
    message = errors[0]["message"]
    assert "1024" in message and "max_text_frame_bytes" in message and "finalize" in message
    assert not any(m["from_finalize"] for m in got.finals)  # it was not acted on
    assert got.messages[-1]["is_last"] and got.close_code == 1000
    assert wer(clip.text, got.final_text) < 0.25


def test_a_text_frame_over_the_frame_limit_closes_with_1009(limited: Server) -> None:
    async def scenario() -> int | None:
        url = f"{limited.ws}{LIVE}?{Q}"
        async with websockets.connect(url, additional_headers=limited.headers()) as ws:
            await ws.send("x" * ((1 << 20) + 10))  # over max_frame_bytes (1 MiB)
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 30)
            return ws.close_code

    assert asyncio.run(scenario()) == 1009


def test_a_session_over_max_session_s_gets_its_finals_then_closes(
    limited: Server, clips: list[Clip]
) -> None:
    speech = join(*(join(c.audio, silence(0.4)) for c in clips[:3]))  # ~15 s of speech
    pcm = pcm16(speech)
    started = time.monotonic()
    got = asyncio.run(
        stream(limited, [*chunks(pcm, 3200), CLOSE], pace=Pace(BYTES_PER_S, speed=1.0))
    )
    took = time.monotonic() - started
    errors = got.of_type("error")
    assert [e["error"] for e in errors] == ["session_too_long"], got.messages
    assert "6 s" in errors[0]["message"] and "max_session_s" in errors[0]["message"]
    position = got.messages.index(errors[0])
    assert all(m["type"] != "transcription" or not m["is_last"] for m in got.messages[:position])
    last = got.messages[-1]
    assert last["type"] == "transcription" and last["is_final"] and last["is_last"]
    assert got.close_code == 1000
    assert 6.0 <= took < 12.0  # closed at the limit, not when the audio ran out (15 s)
    # The finals cover the ~6 s of audio received before the limit: the start of the speech.
    reference = " ".join(c.text for c in clips[:3]).split()
    heard = got.final_text.split()
    assert 6 <= len(heard) < len(reference) * 0.7
    assert wer(" ".join(reference[: len(heard)]), got.final_text) < 0.35


def test_a_key_over_its_limit_gets_an_error_then_1008_and_rest_gets_429(
    limited: Server, clips: list[Clip]
) -> None:
    before = scrape_samples(limited.http)
    body = wav_bytes(clips[1].audio)

    async def scenario() -> tuple[dict[str, Any], int | None, httpx.Response]:
        url = f"{limited.ws}{LIVE}?{Q}"
        headers = limited.headers()
        async with (
            websockets.connect(url, additional_headers=headers),
            websockets.connect(url, additional_headers=headers),
        ):
            async with websockets.connect(url, additional_headers=headers) as third:
                refusal = json.loads(await asyncio.wait_for(third.recv(), 10))
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(third.recv(), 10)
                code = third.close_code
            async with httpx.AsyncClient(timeout=60) as http:
                rest = await http.post(f"{limited.http}{REST}", content=body, headers=headers)
        return refusal, code, rest

    refusal, code, rest = asyncio.run(scenario())
    assert refusal["type"] == "error" and refusal["error"] == "too_many_sessions"
    assert "max_sessions_per_key" in refusal["message"] and "2 sessions" in refusal["message"]
    assert code == 1008
    assert rest.status_code == 429
    assert rest.headers["retry-after"] == "7"
    assert rest.json()["error"] == "too_many_sessions"
    # Once its sessions are over, the key gets sessions and REST answers again.
    wait_for(lambda s: active(s) == 0, limited)
    again = httpx.post(f"{limited.http}{REST}", content=body, headers=limited.headers(), timeout=60)
    assert again.status_code == 200 and wer(clips[1].text, again.json()["transcription"]) < 0.25
    after = scrape_samples(limited.http)
    refused = value(after, "pulse_stt_admission_refusals_total", reason="key_limit") - value(
        before, "pulse_stt_admission_refusals_total", reason="key_limit"
    )
    assert refused == 2  # the third stream and the REST request


def test_a_full_server_refuses_with_503_before_the_upgrade(
    limited: Server, clips: list[Clip]
) -> None:
    other = create_key(limited, "second-customer")
    before = scrape_samples(limited.http)
    body = wav_bytes(clips[2].audio)

    async def scenario() -> tuple[websockets.InvalidStatus, httpx.Response]:
        url = f"{limited.ws}{LIVE}?{Q}"
        async with (
            websockets.connect(url, additional_headers=limited.headers()),
            websockets.connect(url, additional_headers=limited.headers()),
            websockets.connect(url, additional_headers=bearer(other)),  # the server's third
        ):
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with websockets.connect(url, additional_headers=bearer(other)):
                    pass
            async with httpx.AsyncClient(timeout=60) as http:
                rest = await http.post(f"{limited.http}{REST}", content=body, headers=bearer(other))
        return refused.value, rest

    refused, rest = asyncio.run(scenario())
    response = refused.response
    assert response.status_code == 503 and response.headers["Retry-After"] == "7"
    answer = json.loads(response.body or b"{}")
    assert answer["error"] == "server_full" and "max_sessions" in answer["message"]
    assert rest.status_code == 503 and rest.headers["retry-after"] == "7"
    assert rest.json()["error"] == "server_full"
    after = wait_for(lambda s: active(s) == 0, limited)
    moved = value(after, "pulse_stt_admission_refusals_total", reason="server_full") - value(
        before, "pulse_stt_admission_refusals_total", reason="server_full"
    )
    assert moved == 2
    # Slots come back: the second key streams again.
    pcm = pcm16(join(clips[2].audio, silence(0.5)))
    got = play(limited, Q, [*chunks(pcm, 3200), CLOSE], headers=bearer(other))
    assert got.close_code == 1000 and wer(clips[2].text, got.final_text) < 0.25


def test_with_the_defaults_one_key_opening_sessions_is_refused_while_another_gets_in(
    server: Server,
) -> None:
    """Issue 20 row 2, the probe: one key opened sessions until every other key got
    `server_full`. With the production defaults it is refused at its own limit (a quarter
    of the server) and a second key still streams and posts."""
    other = create_key(server, "fair-share-second-key")

    async def scenario() -> tuple[int, dict[str, Any], int | None, int, int]:
        url = f"{server.ws}{LIVE}?{Q}"
        async with contextlib.AsyncExitStack() as held:
            opened = 0
            while True:
                ws = await held.enter_async_context(
                    websockets.connect(url, additional_headers=server.headers())
                )
                with contextlib.suppress(TimeoutError):
                    refusal = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                    with pytest.raises(websockets.ConnectionClosed):
                        await asyncio.wait_for(ws.recv(), 10)
                    break
                opened += 1
                assert opened <= 64, "no per-key limit below the server's"
            async with websockets.connect(url, additional_headers=bearer(other)) as second:
                await second.send(json.dumps({"type": "keepalive"}))
                pong = json.loads(await asyncio.wait_for(second.recv(), 10))
                assert pong["type"] == "pong", pong
            async with httpx.AsyncClient(timeout=60) as http:
                first_rest = await http.post(
                    f"{server.http}{REST}", content=b"", headers=server.headers()
                )
                other_rest = await http.post(
                    f"{server.http}{REST}", content=b"", headers=bearer(other)
                )
            return opened, refusal, ws.close_code, first_rest.status_code, other_rest.status_code

    opened, refusal, code, first_rest, other_rest = asyncio.run(scenario())
    assert opened == 16  # max_sessions_per_key: a quarter of max_sessions (64)
    assert refusal["error"] == "too_many_sessions" and "max_sessions_per_key" in refusal["message"]
    assert code == 1008
    assert first_rest == 429  # the key is at its limit on REST too
    assert other_rest == 400  # the second key is admitted (then told its body is empty)
    wait_for(lambda s: active(s) == 0, server)


# -- a flood of tiny frames slows only its sender (issue 20 row 10) -----------------------

FLOODER = """
import sys, time
from websockets.sync.client import connect
url, key, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
sent = 0
with connect(url, additional_headers={"Authorization": "Bearer " + key}) as ws:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        ws.send(b"\\0")
        sent += 1
print(sent)
"""


async def finalize_round_trips(server: Server, speech: bytes, rounds: int) -> list[float]:
    """Seconds from `finalize` to its final, for `rounds` turns of `speech` streamed in
    real time on one session."""
    url = f"{server.ws}{LIVE}?{Q}"
    trips: list[float] = []
    async with websockets.connect(url, additional_headers=server.headers()) as ws:
        for _ in range(rounds):
            for piece in chunks(speech, 3200):  # 100 ms, in real time
                await ws.send(piece)
                await asyncio.sleep(0.1)
            asked = time.monotonic()
            await ws.send(json.dumps(FINALIZE))
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 30))
                if message.get("is_final") and message.get("from_finalize"):
                    trips.append(time.monotonic() - asked)
                    break
        await ws.send(json.dumps(CLOSE))
    return trips


def test_a_flood_of_one_byte_frames_does_not_delay_another_sessions_finals(
    server: Server, clips: list[Clip]
) -> None:
    """The probe: 1-byte frames as fast as possible used a full core and delayed other
    sessions' finals by 0.6-0.9 s. With max_frames_per_s the flood waits for its own reads;
    the other session's finalize round trip stays near what it is without the flood."""
    speech = pcm16(join(clips[1].audio[: 16000 * 3], silence(0.3)))
    asyncio.run(finalize_round_trips(server, speech, 1))  # warm up
    quiet = asyncio.run(finalize_round_trips(server, speech, 3))
    flood_s = 3 * (len(speech) / BYTES_PER_S + 0.1) + 15
    flooder = subprocess.Popen(
        [sys.executable, "-c", FLOODER, f"{server.ws}{LIVE}?{Q}", server.key, str(flood_s)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # the flood is on
        flooded = asyncio.run(finalize_round_trips(server, speech, 3))
    finally:
        flooder.terminate()
        flooder.wait(30)
    quiet_median, flooded_median = float(np.median(quiet)), float(np.median(flooded))
    print(f"finalize round trip, median s: quiet {quiet_median:.3f}, flooded {flooded_median:.3f}")
    print(f"  quiet {[round(t, 3) for t in quiet]} flooded {[round(t, 3) for t in flooded]}")
    assert flooded_median < quiet_median + 0.3, (quiet, flooded)


# -- admission control under real overload -----------------------------------------------


def test_an_overloaded_engine_refuses_new_sessions_and_admitted_ones_get_every_final(
    tmp_path: Path, clips: list[Clip]
) -> None:
    """One decode worker, many fast senders that finalize every 2 s of speech: finals queue
    up, new sessions get 503 `overloaded`, and every admitted session gets one final per
    finalize it sent, then is_last."""
    speech = join(*(join(c.audio, silence(0.3)) for c in clips))  # 26 s of real speech
    pcm = pcm16(speech)
    step = 2 * BYTES_PER_S
    steps: list[Step] = []
    for i in range(0, len(pcm), step):
        steps += [*chunks(pcm[i : i + step], 8000), FINALIZE]
    finalizes = sum(1 for s in steps if s is FINALIZE)
    reference = " ".join(c.text for c in clips)
    with running_server(
        tmp_path, decode_workers="1", admission_max_final_wait_s="0.5", max_sessions="0"
    ) as server:
        before = scrape_samples(server.http)

        async def scenario() -> tuple[list[Received], list[websockets.InvalidStatus], bool]:
            callers = [asyncio.create_task(stream(server, [*steps, CLOSE])) for _ in range(4)]
            refusals: list[websockets.InvalidStatus] = []
            url = f"{server.ws}{LIVE}?{Q}"
            deadline = time.monotonic() + 60
            while not refusals and time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                try:
                    async with websockets.connect(url, additional_headers=server.headers()):
                        pass  # admitted (the engine kept up so far): closes at once
                except websockets.InvalidStatus as exc:
                    refusals.append(exc)
            received = await asyncio.gather(*callers)
            # The load is over: new sessions are welcome again.
            async with websockets.connect(url, additional_headers=server.headers()) as ws:
                await ws.send(json.dumps(CLOSE))
                admitted_again = json.loads(await ws.recv())["is_last"]
            return received, refusals, admitted_again

        received, refusals, admitted_again = asyncio.run(scenario())
        after = scrape_samples(server.http)
        assert not log_problems(server), server.log.read_text()[-5000:]
    assert refusals, "no session was refused while the engine was behind"
    response = refusals[0].response
    assert response.status_code == 503 and int(response.headers["Retry-After"]) >= 1
    answer = json.loads(response.body or b"{}")
    assert answer["error"] == "overloaded" and "admission_max_final_wait_s" in answer["message"]
    refused = value(after, "pulse_stt_admission_refusals_total", reason="overloaded") - value(
        before, "pulse_stt_admission_refusals_total", reason="overloaded"
    )
    assert refused >= 1
    for got in received:  # admitted sessions: never cut off, no final lost
        assert got.close_code == 1000
        assert sum(1 for m in got.finals if m["from_finalize"]) == finalizes
        assert got.messages[-1]["is_last"] and not got.of_type("error")
        assert wer(reference, got.final_text) < 0.3
    assert admitted_again


# -- a client that does not read -------------------------------------------------------------


def rss_mb(pid: int) -> float:
    """Resident MiB of a process."""
    return process_usage(pid)[0] / 2**20


class NonReadingClient:
    """A WebSocket client on a plain socket that sends and never reads: websockets' sans-I/O
    protocol frames what it sends; nothing reads what the server writes. Its receive window
    is small and it announces a small segment size, so the kernel buffers little on both
    sides and the server soon finds it cannot write."""

    def __init__(self, server: Server, query: str) -> None:
        self.protocol = ClientProtocol(parse_uri(f"{server.ws}{LIVE}?{query}"))
        request = self.protocol.connect()
        request.headers["Authorization"] = f"Bearer {server.key}"
        self.protocol.send_request(request)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 88)
        self.sock.connect((server.host, server.port))
        self.sock.sendall(b"".join(self.protocol.data_to_send()))
        head = b""
        while not head.endswith(b"\r\n\r\n"):  # the 101 response, byte by byte: no more
            head += self.sock.recv(1)
        self.protocol.receive_data(head)
        assert self.protocol.events_received()[0].status_code == 101
        self.sent_s = 0.0
        self.send_error: OSError | None = None

    def flood(self, steps: Sequence[bytes | dict[str, str]]) -> None:
        """Send every step (audio, or a control message) as fast as the socket takes it."""
        self.sock.settimeout(120)
        try:
            for step in steps:
                if isinstance(step, bytes):
                    self.protocol.send_binary(step)
                    self.sent_s += len(step) / BYTES_PER_S
                else:
                    self.protocol.send_text(json.dumps(step).encode())
                self.sock.sendall(b"".join(self.protocol.data_to_send()))
        except OSError as exc:  # the server dropped the connection
            self.send_error = exc

    def read_all(self) -> tuple[bytes, bool]:
        """Now read everything the server wrote; True when the connection then ended."""
        self.sock.settimeout(5)
        data = b""
        try:
            while chunk := self.sock.recv(1 << 16):
                data += chunk
        except TimeoutError:
            return data, False
        except OSError:
            pass
        return data, True


def talk(speech: np.ndarray, seconds: int, *, turn_s: int = 20) -> list[bytes | dict[str, str]]:
    """`seconds` of real speech in 1 s frames, with a finalize every `turn_s` seconds."""
    pcm = pcm16(np.tile(speech, int(seconds * 16_000 / speech.size) + 1)[: seconds * 16_000])
    steps: list[bytes | dict[str, str]] = []
    for second, frame in enumerate(chunks(pcm, BYTES_PER_S), start=1):
        steps += [frame, FINALIZE] if second % turn_s == 0 else [frame]
    return steps


def pause(seconds: int) -> list[bytes | dict[str, str]]:
    """Silence in 20 ms frames, each followed by a finalize: a final every time (with the
    growing full_transcript), and no decoding."""
    frame = pcm16(silence(0.02))
    return [frame, FINALIZE] * (seconds * 50)


def counter(samples: Samples, name: str, **labels: str) -> float:
    return value(samples, f"pulse_stt_{name}_total", **labels)


SLOW_QUERY = f"{Q}&vad_events=true&full_transcript=true&word_timestamps=true"
BACKLOG = 1 << 20  # max_send_backlog_bytes of the slow-reader server: 16 s of float32 audio


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory, clips: list[Clip]) -> Iterator[Server]:
    with running_server(
        tmp_path_factory.mktemp("slow"),
        send_timeout_s="3",
        max_send_backlog_bytes=str(BACKLOG),
        log_level="info",
    ) as running:
        # The same decoding work, by a client that reads: memory is measured from here.
        speech = join(*(join(c.audio, silence(0.4)) for c in clips))
        warmed = play(running, SLOW_QUERY, [*talk(speech, 40), CLOSE])
        assert warmed.close_code == 1000 and len(warmed.finals) >= 2
        yield running
    assert not log_problems(running), running.log.read_text()[-5000:]


def test_a_client_that_sends_fast_and_does_not_read_is_held_to_the_backlog(
    slow_server: Server, clips: list[Clip]
) -> None:
    """30 minutes of real speech sent at full speed (a finalize every 20 s), nothing read.
    The server reads audio only as fast as it transcribes it and writes the finals: never
    more than the backlog (and the turn being read) ahead of the finals it has sent, and
    its memory stays where a reading client left it."""
    server = slow_server
    assert server.pid is not None
    speech = join(*(join(c.audio, silence(0.4)) for c in clips))
    flood = talk(speech, 30 * 60)
    baseline, before = rss_mb(server.pid), scrape_samples(server.http)
    client = NonReadingClient(server, SLOW_QUERY)
    flooding = threading.Thread(target=client.flood, args=(flood,), daemon=True)
    flooding.start()
    peak, ahead = baseline, []
    started = time.monotonic()
    while time.monotonic() - started < 10:
        time.sleep(0.5)
        peak = max(peak, rss_mb(server.pid))
        now = scrape_samples(server.http)
        read_s = counter(now, "audio_seconds", kind="stream") - counter(
            before, "audio_seconds", kind="stream"
        )
        finalized_s = 20 * (
            counter(now, "finals", reason="finalize") - counter(before, "finals", reason="finalize")
        )
        ahead.append(read_s - finalized_s)
    client.sock.close()  # the client goes away: its session ends and is freed
    after = wait_for(lambda s: active(s) == 0, server)
    assert active(after) == 0
    assert read_s > 40, "the flood did not get going"  # a few turns went through
    # Without the bound the server reads all 30 minutes within seconds (its VAD runs ~100x
    # real time) and holds them as float32: +500 MB measured, 1800 s ahead.
    assert max(ahead) <= 2 * 20 + BACKLOG / (16_000 * 4) + 5, ahead
    assert peak - baseline < 60, (baseline, peak)


def test_a_client_that_does_not_read_is_closed_and_others_keep_their_finals(
    slow_server: Server, clips: list[Clip]
) -> None:
    """A minute of talk, then silence with a final asked for every 20 ms (each carrying the
    full transcript so far): many bytes for a client that reads none. Once the socket's
    buffers are full, the server waits send_timeout_s, then closes the session (1008) and
    frees it; a caller streaming meanwhile in real time gets its finals."""
    server = slow_server
    assert server.pid is not None
    speech = join(*(join(c.audio, silence(0.4)) for c in clips))
    baseline = rss_mb(server.pid)
    client = NonReadingClient(server, SLOW_QUERY)
    flooding = threading.Thread(
        target=client.flood, args=([*talk(speech, 60), *pause(25 * 60)],), daemon=True
    )
    flooding.start()
    other_clip = clips[3]
    other_pcm = pcm16(join(other_clip.audio, silence(1.0)))
    other: list[Received] = []
    caller = threading.Thread(
        target=lambda: other.append(
            play(server, Q, [*chunks(other_pcm, 3200), CLOSE], pace=Pace(BYTES_PER_S))
        )
    )
    caller.start()
    peak = baseline
    deadline = time.monotonic() + 35  # before uvicorn's own keepalive (ping 20 s + 20 s)
    while time.monotonic() < deadline:
        peak = max(peak, rss_mb(server.pid))
        if counter(scrape_samples(server.http), "errors", kind="slow_reader") >= 1:
            break
        time.sleep(0.2)
    closed_in_time = time.monotonic() < deadline
    caller.join(60)
    data, ended = client.read_all()
    flooding.join(30)
    samples = wait_for(lambda s: active(s) == 0, server)

    assert closed_in_time and counter(samples, "errors", kind="slow_reader") == 1
    ended_line = next(
        json.loads(line)
        for line in server.log.read_text().splitlines()
        if '"session ended"' in line and '"slow_reader"' in line
    )
    assert ended_line["close_code"] == 1008
    assert peak - baseline < 60, (baseline, peak)
    # Reading at last, the client gets what was written before the close, then the end of
    # the connection (a close frame cannot get past what it never read).
    client.protocol.receive_data(data)
    if ended:
        client.protocol.receive_eof()
    frames = client.protocol.events_received()
    assert ended and frames and client.protocol.close_code in (1006, 1008)
    # The reading caller was served throughout, and the server holds no session now.
    assert len(other) == 1 and other[0].close_code == 1000
    assert wer(other_clip.text, other[0].final_text) < 0.25
    assert active(samples) == 0
