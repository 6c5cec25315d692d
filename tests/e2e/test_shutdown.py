"""SIGTERM on a real server with live sessions: every open turn gets its final (as the
session's last message), sessions close with 1001, new work is refused, REST requests in
flight finish, usage is recorded, and the process exits 0 within the grace period.

One server, one scenario (a module fixture); the tests below each check one promise.
Five callers stream real LibriVox recordings at real-time pace (A, B, C and E read two
sentences back to back):

- A, B, C are mid-sentence when SIGTERM arrives (started 0.5 s apart);
- D said one sentence, sent `finalize`, got its final and is idle between turns;
- E is mid-sentence too, streaming through `pulse_stt.client` (its `stream()` must end
  normally after the is_last message).

A REST request with a 13 s file is in flight, and a kept-alive HTTP connection and a
connected-but-silent TCP socket are ready to try new work once the server drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets

from pulse_stt.client import AsyncPulseClient, StreamOptions
from tests.support.audio import Clip, join, pcm16, silence, wav_bytes, wer
from tests.support.client import LIVE, chunks
from tests.support.server import Server, keys_list, running_server

pytestmark = pytest.mark.e2e

Q = "model=pulse&language=en&sample_rate=16000&encoding=linear16&word_timestamps=true"
BYTES_PER_S = 32_000
GRACE_S = 20.0
SIGTERM_AT = 5.0  # seconds after the first caller starts (later if D's final is late)
MID_EOU_MS = 2000  # the mid-sentence callers' pauses never end a turn on their own
Step = bytes | dict[str, Any] | float  # paced audio | control message | pause


@dataclass
class Call:
    """One caller's side of a session: what it sent and received, and when (monotonic)."""

    reference: str  # what the caller says, in full
    messages: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    sent: list[tuple[float, int]] = field(default_factory=list)  # (time, audio bytes so far)
    close_code: int | None = None
    closed_at: float = 0.0

    def audio_sent_s(self, at: float) -> float:
        return max((n for t, n in self.sent if t <= at), default=0) / BYTES_PER_S

    def before(self, at: float) -> list[dict[str, Any]]:
        return [m for t, m in self.messages if t < at]

    def after(self, at: float) -> list[dict[str, Any]]:
        return [m for t, m in self.messages if t >= at]

    @property
    def session_id(self) -> str:
        return str(self.messages[0][1]["session_id"])


@dataclass
class Drained:
    """What the scenario observed."""

    server: Server
    calls: dict[str, Call]
    sigterm_at: float
    ready_status: int
    rest_refusal: httpx.Response
    ws_refusal: websockets.InvalidStatus | None
    listener_closed_after_s: float | None
    rest: httpx.Response
    rest_answered_at: float
    rest_reference: str
    exit_status: tuple[int, int]  # (si_code, si_status) of the server process
    exited_at: float
    log: str


def finals(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m.get("type") == "transcription" and m["is_final"]]


def prefix_wer(reference: str, hypothesis: str) -> float:
    """WER of `hypothesis` against the best-matching prefix of `reference`: the words said
    before the cut, whichever word the cut fell in."""
    words = reference.split()
    return min(wer(" ".join(words[:n]), hypothesis) for n in range(1, len(words) + 1))


async def _sleep_until(at: float) -> None:
    await asyncio.sleep(max(0.0, at - time.monotonic()))


async def _library_call(server: Server, got: Call, audio: np.ndarray, start_at: float) -> None:
    """A caller using pulse_stt.client's `stream()`, fed at real-time pace."""
    await _sleep_until(start_at)

    async def frames() -> AsyncIterator[bytes]:
        started, audio_bytes = time.monotonic(), 0
        for chunk in chunks(pcm16(audio)):
            yield chunk
            audio_bytes += len(chunk)
            got.sent.append((time.monotonic(), audio_bytes))
            await _sleep_until(started + audio_bytes / BYTES_PER_S)

    async with AsyncPulseClient(server.http, server.key) as client:
        options = StreamOptions(language="en", word_timestamps=True, eou_timeout_ms=MID_EOU_MS)
        async for message in client.stream(frames(), options):
            got.messages.append((time.monotonic(), message.raw))
    got.closed_at = time.monotonic()


async def _call(
    server: Server, got: Call, query: str, steps: Sequence[Step], start_at: float
) -> None:
    """Play `steps` (audio at real-time pace), then stay connected until the server closes."""
    await _sleep_until(start_at)
    url = f"{server.ws}{LIVE}?{query}"
    async with websockets.connect(url, additional_headers=server.headers()) as ws:

        async def receive() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                async for raw in ws:
                    got.messages.append((time.monotonic(), json.loads(raw)))
            got.closed_at = time.monotonic()

        receiver = asyncio.create_task(receive())
        started, audio_bytes = time.monotonic(), 0
        with contextlib.suppress(websockets.ConnectionClosed):  # closed while speaking
            for step in steps:
                if isinstance(step, bytes):
                    await ws.send(step)
                    audio_bytes += len(step)
                    got.sent.append((time.monotonic(), audio_bytes))
                    await _sleep_until(started + audio_bytes / BYTES_PER_S)
                elif isinstance(step, dict):
                    await ws.send(json.dumps(step))
                else:
                    await asyncio.sleep(step)
        await asyncio.wait_for(receiver, 60)
        got.close_code = ws.close_code


def _wait_for_exit(pid: int, timeout: float) -> tuple[int, int]:
    """(si_code, si_status) once the child exits, without reaping it (conftest reaps it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT | os.WNOHANG)
        if info is not None and info.si_pid == pid:
            return info.si_code, info.si_status
        time.sleep(0.02)
    raise AssertionError(f"the server did not exit within {timeout:g} s of SIGTERM")


def _listener_closed_after(server: Server, since: float) -> float | None:
    """Seconds after `since` at which a new TCP connection is refused (None: not in 3 s)."""
    while time.monotonic() < since + 3:
        try:
            socket.create_connection((server.host, server.port), timeout=1).close()
        except ConnectionRefusedError:
            return time.monotonic() - since
        time.sleep(0.02)
    return None


def _two_sentences(first: Clip, second: Clip) -> tuple[np.ndarray, str]:
    """13 s or so of continuous reading: mid-sentence whenever the signal comes."""
    return join(first.audio, silence(0.2), second.audio), f"{first.text} {second.text}"


async def _scenario(server: Server, clips: list[Clip]) -> Drained:
    t0 = time.monotonic() + 0.2
    calls: dict[str, Call] = {}
    tasks = []
    mid_query = f"{Q}&eou_timeout_ms={MID_EOU_MS}"
    for name, first, second, delay in [("A", 0, 3, 0.0), ("B", 3, 2, 0.5), ("C", 2, 0, 1.0)]:
        audio, reference = _two_sentences(clips[first], clips[second])
        calls[name] = Call(reference)
        steps = chunks(pcm16(audio))
        tasks.append(asyncio.create_task(_call(server, calls[name], mid_query, steps, t0 + delay)))
    d = clips[1]
    calls["D"] = Call(d.text)
    between_turns = [*chunks(pcm16(join(d.audio, silence(0.3)))), {"type": "finalize"}]
    tasks.append(asyncio.create_task(_call(server, calls["D"], Q, between_turns, t0)))
    audio, reference = _two_sentences(clips[0], clips[2])
    calls["E"] = Call(reference)
    tasks.append(asyncio.create_task(_library_call(server, calls["E"], audio, t0 + 1.5)))

    # SIGTERM at SIGTERM_AT, or once D has the final of its turn if that comes later.
    await _sleep_until(t0 + SIGTERM_AT - 1.0)
    # (All others are still mid-sentence until t0 + 11 s.)
    while not finals([m for _, m in calls["D"].messages]) and time.monotonic() < t0 + 10.3:
        await asyncio.sleep(0.05)
    signal_at = max(t0 + SIGTERM_AT, time.monotonic() + 0.7)

    # A file of three sentences over REST, sent just before the signal (three model
    # passes: still in flight then); it must be answered in full.
    # Long enough (about 2 min of speech, several seconds to transcribe beside five live
    # sessions even with packed, batched file turns) to be still in flight when the
    # signal comes 0.7 s after it was sent (40 s of speech sometimes finished first).
    sentences = [clips[1], clips[4], clips[2]] * 6
    long_file = join(*(part for clip in sentences for part in (clip.audio, silence(0.6))))
    rest_reference = " ".join(clip.text for clip in sentences)

    def transcribe_long_file() -> tuple[httpx.Response, float]:
        response = httpx.post(
            f"{server.http}/waves/v1/stt?model=pulse&language=en",
            content=wav_bytes(long_file),
            headers={**server.headers(), "Content-Type": "audio/wav"},
            timeout=120,
        )
        return response, time.monotonic()

    await _sleep_until(signal_at - 0.7)
    rest_task = asyncio.create_task(asyncio.to_thread(transcribe_long_file))

    # A kept-alive HTTP connection and a connected TCP socket, for new work after SIGTERM.
    await _sleep_until(signal_at - 0.5)
    kept_alive = httpx.Client(base_url=server.http, headers=server.headers(), timeout=10)
    assert kept_alive.get("/health").status_code == 200
    idle_socket = socket.create_connection((server.host, server.port))

    await _sleep_until(signal_at)
    assert server.pid is not None
    sigterm_at = time.monotonic()
    os.kill(server.pid, signal.SIGTERM)
    # At once, blocking the loop for a few ms: these must land while the server drains.
    ready_status = 200
    while ready_status == 200 and time.monotonic() < sigterm_at + 0.5:
        ready_status = kept_alive.get("/ready").status_code
    rest_refusal = kept_alive.post(
        "/waves/v1/stt?model=pulse&language=en",
        content=wav_bytes(d.audio),
        headers={"Content-Type": "audio/wav"},
    )
    kept_alive.close()
    ws_refusal = None
    try:
        async with websockets.connect(
            f"{server.ws}{LIVE}?{Q}", sock=idle_socket, additional_headers=server.headers()
        ):
            pass
    except websockets.InvalidStatus as refused:
        ws_refusal = refused
    listener_closed = await asyncio.to_thread(_listener_closed_after, server, sigterm_at)

    await asyncio.gather(*tasks)
    rest, rest_answered_at = await rest_task
    exit_status = await asyncio.to_thread(_wait_for_exit, server.pid, GRACE_S + 10)
    return Drained(
        server=server,
        calls=calls,
        sigterm_at=sigterm_at,
        ready_status=ready_status,
        rest_refusal=rest_refusal,
        ws_refusal=ws_refusal,
        listener_closed_after_s=listener_closed,
        rest=rest,
        rest_answered_at=rest_answered_at,
        rest_reference=rest_reference,
        exit_status=exit_status,
        exited_at=time.monotonic(),
        log="",
    )


@pytest.fixture(scope="module")
def drained(tmp_path_factory: pytest.TempPathFactory, clips: list[Clip]) -> Drained:
    data = tmp_path_factory.mktemp("shutdown-server")
    with running_server(data, shutdown_grace_s=str(GRACE_S), log_level="info") as server:
        result = asyncio.run(_scenario(server, clips))
    result.log = server.log.read_text()
    return result


def _log_records(log: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.splitlines() if line.startswith("{")]


def test_every_open_turn_gets_its_final_as_the_last_message_then_1001(drained: Drained) -> None:
    cut = drained.sigterm_at
    for name in "ABCE":
        call = drained.calls[name]
        before, after = call.before(cut), call.after(cut)
        assert not finals(before), f"{name} was not mid-sentence"
        assert call.audio_sent_s(cut) > 2.5, name  # speaking for a while already
        # After SIGTERM: the open turn's final, and it is the last message of the session.
        assert len(finals(after)) == 1, (name, after)
        final = after[-1]
        assert final["is_final"] and final["is_last"] and not final["from_finalize"], final
        if name != "E":  # (pulse_stt.client ends its stream() at is_last, without error)
            assert call.close_code == 1001, (name, call.close_code)
        # The words said so far, up to about where the audio stopped.
        assert prefix_wer(call.reference, final["transcript"]) <= 0.2, (name, final)
        spoken_s = call.audio_sent_s(cut)
        last_word_end = final["words"][-1]["end"]
        assert spoken_s - 1.5 <= last_word_end <= call.audio_sent_s(call.closed_at) + 0.3, (
            name,
            spoken_s,
            final["words"],
        )


def test_a_session_between_turns_gets_an_empty_last_message_and_1001_at_once(
    drained: Drained,
) -> None:
    call, cut = drained.calls["D"], drained.sigterm_at
    turn = finals(call.before(cut))
    timeline = [(round(t - cut, 2), m.get("type"), m.get("is_final")) for t, m in call.messages]
    assert len(turn) == 1 and turn[0]["from_finalize"], f"no final before SIGTERM: {timeline}"
    assert wer(call.reference, turn[0]["transcript"]) <= 0.2, turn[0]
    after = call.after(cut)
    assert len(after) == 1 and after[0]["is_last"] and after[0]["transcript"] == "", after
    assert call.close_code == 1001
    assert call.closed_at - cut < 1.5  # nothing to decode: no wait for the other finals


def test_new_work_is_refused_once_draining(drained: Drained) -> None:
    assert drained.ready_status == 503
    refusal = drained.rest_refusal
    assert refusal.status_code == 503 and refusal.headers["Retry-After"].isdigit()
    assert refusal.json()["error"] == "unavailable" and "retry" in refusal.json()["message"]
    assert drained.ws_refusal is not None, "the WebSocket handshake was accepted while draining"
    response = drained.ws_refusal.response
    assert response.status_code == 503 and response.headers["Retry-After"].isdigit()
    assert json.loads(response.body or b"{}")["error"] == "unavailable"
    assert drained.listener_closed_after_s is not None and drained.listener_closed_after_s < 1


def test_a_rest_request_in_flight_is_answered_in_full(drained: Drained) -> None:
    assert drained.rest.status_code == 200, drained.rest.text
    assert drained.rest_answered_at > drained.sigterm_at, "the request was not in flight"
    assert wer(drained.rest_reference, drained.rest.json()["transcription"]) <= 0.15


def test_the_process_exits_0_within_the_grace_period_logging_each_phase(
    drained: Drained,
) -> None:
    assert drained.exit_status == (os.CLD_EXITED, 0)
    assert drained.exited_at - drained.sigterm_at < GRACE_S
    records = _log_records(drained.log)
    phases = [r for r in records if r["message"].startswith("shutdown: ")]
    assert [r["message"] for r in phases] == [
        "shutdown: draining",
        "shutdown: sessions closed",
        "shutdown: done",
    ], phases
    assert phases[0]["sessions"] == 5 and phases[0]["cause"] == "SIGTERM"
    assert phases[1]["still_open"] == 0
    ended = {r["session_id"]: r for r in records if r["message"] == "session ended"}
    for call in drained.calls.values():
        record = ended[call.session_id]
        assert (record["close_code"], record["close_reason"]) == (1001, "server_shutdown")
    problems = [line for line in drained.log.splitlines() if "ERROR" in line or "Traceback" in line]
    assert not problems, problems
    # Neither the key nor what was said reaches the log (log_transcripts is off).
    assert drained.server.key not in drained.log
    said = {
        word.strip(".,!?;:").lower()
        for call in drained.calls.values()
        for final in finals(call.after(0))
        for word in final["transcript"].split()
    }
    distinctive = sorted(w for w in said if len(w) >= 6)
    assert distinctive and not [w for w in distinctive if w in drained.log.lower()]


def test_usage_is_recorded_for_every_drained_session(drained: Drained) -> None:
    database = Path(drained.server.env["PULSE_STT_DATA_DIR"]) / "pulse-stt.db"
    with contextlib.closing(sqlite3.connect(database)) as db:
        rows = dict(db.execute("SELECT session_id, audio_seconds FROM usage").fetchall())
    for name, call in drained.calls.items():
        assert call.session_id in rows, f"no usage row for {name}"
        heard = max(w["end"] for m in finals(call.after(0)) for w in m.get("words", []))
        assert rows[call.session_id] >= heard, (name, rows[call.session_id], heard)
    assert len(rows) == 6  # the five sessions and the REST request
    _, total = keys_list(drained.server)  # what `pulse-stt keys list` shows for the key
    assert total == pytest.approx(round(sum(rows.values()), 1), abs=0.11)
