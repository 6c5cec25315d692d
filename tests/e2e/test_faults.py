"""Faults a real server must survive: clients that vanish mid-utterance (with and without a
close frame) and a failing model (an exception in a pass, a decode worker thread that
dies). Nothing leaks, usage is recorded, the other sessions carry on, and the engine
recovers."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
import websockets

from pulse_stt.api.app import create_app
from pulse_stt.api.context import ServerContext
from pulse_stt.api.shutdown import GracefulServer
from pulse_stt.api.websocket import StreamRunner
from pulse_stt.config import Settings
from pulse_stt.engine.transcriber import WhisperTranscriber
from pulse_stt.engine.types import DecodeJob, Hypothesis
from tests.support.audio import Clip, join, pcm16, silence
from tests.support.client import LIVE, Pace, Received, chunks, run_script
from tests.support.prometheus import scrape_samples, value
from tests.support.server import API_KEY, Server

pytestmark = pytest.mark.e2e

Q = "model=pulse&language=en&sample_rate=16000&encoding=linear16"


def metric(server: Server, name: str, **labels: str) -> float:
    samples = scrape_samples(server.http)
    if (name, tuple(sorted(labels.items()))) not in samples:
        raise AssertionError(f"{name}{labels} is not exported")
    return value(samples, name, **labels)


def settles(check: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def usage_row(server: Server, session_id: str) -> float | None:
    database = Path(server.env["PULSE_STT_DATA_DIR"]) / "pulse-stt.db"
    with contextlib.closing(sqlite3.connect(database)) as db:
        row = db.execute(
            "SELECT audio_seconds FROM usage WHERE session_id = ?", (session_id,)
        ).fetchone()
    return None if row is None else float(row[0])


# -- clients that vanish ---------------------------------------------------------------------


@dataclass
class Vanished:
    session_id: str
    sent_s: float


async def _speak_then_vanish(server: Server, clip: Clip, how: str) -> Vanished:
    """Send 3 s of speech, wait for a partial (the turn is open on the server), then leave:
    `close` (a close frame, no close_stream), `abort` (the TCP connection just drops), or
    `finalize-abort` (a final is owed when the connection drops)."""
    url = f"{server.ws}{LIVE}?{Q}"
    pcm = pcm16(clip.audio[: 3 * 16000])
    ws = await websockets.connect(url, additional_headers=server.headers())
    for chunk in chunks(pcm, 3200):
        await ws.send(chunk)
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if message.get("type") == "transcription" and message["transcript"]:
            assert not message["is_final"]
            break
    if how == "close":
        await ws.close()
    else:
        if how == "finalize-abort":
            await ws.send(json.dumps({"type": "finalize"}))
        ws.transport.abort()  # no close frame: the call just drops
    return Vanished(message["session_id"], len(pcm) / 32000)


@pytest.mark.parametrize("how", ["close", "abort", "finalize-abort"])
def test_a_client_that_vanishes_mid_utterance_frees_its_session(
    server: Server, clips: list[Clip], how: str
) -> None:
    log_before = server.log.read_text()
    gone = asyncio.run(_speak_then_vanish(server, clips[0], how))
    # The session is gone from the server: the gauge is back to zero, no job is queued.
    assert settles(lambda: metric(server, "pulse_stt_active_sessions", endpoint="live") == 0)
    for queue in ("finals", "background"):
        assert settles(
            lambda q=queue: metric(server, "pulse_stt_queue_depth", model="pulse", queue=q) == 0
        )
    # Usage is recorded: all of it after a close frame; after a dropped connection, what
    # reached the server before the reset (the kernel drops what was not read yet).
    assert settles(lambda: usage_row(server, gone.session_id) is not None)
    recorded = usage_row(server, gone.session_id)
    assert recorded is not None and 0 < recorded <= gone.sent_s + 1e-6
    if how == "close":
        assert recorded == pytest.approx(gone.sent_s, abs=1e-3)
    # No noise: nothing logged at warning level or above, no traceback, for this departure.
    new_lines = server.log.read_text()[len(log_before) :].splitlines()
    noise = ("WARNING", "ERROR", "CRITICAL", "Traceback")
    assert not [line for line in new_lines if any(word in line for word in noise)], new_lines
    # And the server goes on serving.
    got = asyncio.run(
        run_script(server, Q, [*chunks(pcm16(clips[1].audio)), {"type": "close_stream"}])
    )
    assert got.close_code == 1000 and clips[1].matches(got.final_text, 0.15)


# -- a failing model -------------------------------------------------------------------------


class WorkerKilled(BaseException):
    """Not an Exception: what tears a decode worker thread down."""


@dataclass
class Faults:
    """Which sessions' passes fail: every pass of a `doomed` session raises (the whole pass,
    as a model pass does), and the first partial pass of a `killer` session kills the
    decode worker thread running it."""

    doomed: set[str] = field(default_factory=set)
    killer: set[str] = field(default_factory=set)
    kills: int = 0
    mixed_failures: int = 0  # raising batch passes that also held other sessions' jobs
    lock: threading.Lock = field(default_factory=threading.Lock)

    def check(self, jobs: list[DecodeJob]) -> None:
        sessions = {job.session_id for job in jobs}
        with self.lock:
            killing = any(job.session_id in self.killer and not job.is_final for job in jobs)
            if killing and self.kills == 0:
                self.kills += 1
                raise WorkerKilled(sorted(sessions))
            if sessions & self.doomed:
                if sessions - self.doomed:
                    self.mixed_failures += 1
                raise RuntimeError("model pass failed (injected)")


@dataclass
class InProcess:
    server: Server
    ctx: ServerContext
    faults: Faults


@pytest.fixture(scope="module")
def in_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    """The real app and model in this process (so the model's passes can be made to fail),
    served by uvicorn on a free port from a background thread."""
    faults = Faults()
    patch = pytest.MonkeyPatch()
    decode, decode_batch, run = (
        WhisperTranscriber.decode,
        WhisperTranscriber.decode_batch,
        StreamRunner.run,
    )

    def failing_decode(self: WhisperTranscriber, job: DecodeJob) -> Hypothesis:
        faults.check([job])
        return decode(self, job)

    def failing_decode_batch(
        self: WhisperTranscriber, jobs: list[DecodeJob]
    ) -> list[Hypothesis | BaseException]:
        faults.check(jobs)
        return decode_batch(self, jobs)

    async def marking_run(self: StreamRunner) -> None:
        marked = {"doomed": faults.doomed, "killer": faults.killer}
        if (chosen := marked.get(self.params.external_session_id or "")) is not None:
            with faults.lock:
                chosen.add(self.session_id)
        await run(self)

    patch.setattr(WhisperTranscriber, "decode", failing_decode)
    patch.setattr(WhisperTranscriber, "decode_batch", failing_decode_batch)
    patch.setattr(StreamRunner, "run", marking_run)
    data = tmp_path_factory.mktemp("faults-server")
    # One decode worker: every pass goes through it, so sessions' jobs share batches.
    settings = Settings(data_dir=data, decode_workers=1, idle_timeout_s=30)
    ctx = ServerContext.create(settings)
    ctx.store.ensure_key("PULSE_STT_API_KEY", API_KEY)
    config = uvicorn.Config(
        create_app(ctx),
        host="127.0.0.1",
        port=0,
        ws="websockets-sansio",
        lifespan="off",
        log_config=None,
    )
    uvicorn_server = GracefulServer(config, ctx)
    thread = threading.Thread(target=uvicorn_server.run, name="faults-server", daemon=True)
    thread.start()
    try:
        assert settles(lambda: uvicorn_server.started, 60), "the server did not start"
        port = uvicorn_server.servers[0].sockets[0].getsockname()[1]
        env = {"PULSE_STT_DATA_DIR": str(data)}
        yield InProcess(Server("127.0.0.1", port, API_KEY, env, data / "none.log"), ctx, faults)
    finally:
        uvicorn_server.should_exit = True
        thread.join(30)
        ctx.close()
        patch.undo()


def _stream(
    server: Server, clip: Clip, *, external_id: str | None = None, realtime: bool = True
) -> Any:
    query = Q + (f"&external_session_id={external_id}" if external_id else "")
    steps = [*chunks(pcm16(join(clip.audio, silence(0.3)))), {"type": "finalize"}]
    return run_script(
        server,
        query,
        [*steps, {"type": "close_stream"}],
        pace=Pace(32000) if realtime else None,
        timeout=120,
    )


def _errors(got: Received) -> list[dict[str, Any]]:
    return got.of_type("error")


def test_a_dead_decode_worker_is_replaced_and_its_session_carries_on(
    in_process: InProcess, clips: list[Clip], caplog: pytest.LogCaptureFixture
) -> None:
    server, faults = in_process.server, in_process.faults
    clip = clips[4]
    got = asyncio.run(_stream(server, clip, external_id="killer"))
    assert faults.kills == 1
    assert "decode worker decode-0 replaced" in caplog.text
    assert in_process.ctx.engine.worker_restarts() == 1
    assert metric(server, "pulse_stt_decode_worker_restarts_total", model="pulse") == 1
    assert httpx.get(f"{server.http}/ready").status_code == 200
    # The killed pass was one of its partials: the session went on, its final is right.
    assert not _errors(got), got.messages
    assert got.close_code == 1000 and got.finals[-1]["is_last"]
    assert clip.matches(got.final_text, 0.15), got.final_text


def test_a_failing_model_pass_fails_only_its_session(
    in_process: InProcess, clips: list[Clip], caplog: pytest.LogCaptureFixture
) -> None:
    server, faults = in_process.server, in_process.faults
    doomed, healthy = clips[2], [clips[0], clips[3]]

    async def together(realtime: bool) -> list[Received]:
        return list(
            await asyncio.gather(
                _stream(server, doomed, external_id="doomed", realtime=realtime),
                *(_stream(server, clip, realtime=realtime) for clip in healthy),
            )
        )

    caplog.set_level(logging.WARNING)
    engine_errors = metric(server, "pulse_stt_errors_total", kind="engine_error")
    told = 0
    # Whether a failing pass also held other sessions' jobs depends on timing; every
    # round checks the isolation, and rounds go on (the last in one burst, which queues
    # all three sessions' jobs together) until such a mixed batch has failed.
    for realtime in (True, True, False):
        failed, *fine = asyncio.run(together(realtime))
        # The doomed session is told, gets its finals (empty, as owed), and ends normally.
        errors = _errors(failed)
        told += len(errors)
        assert errors and all(e["error"] == "engine_error" for e in errors), failed.messages
        assert failed.finals and all(m["transcript"] == "" for m in failed.finals)
        assert not [m for m in failed.of_type("transcription") if m["transcript"]]
        assert failed.finals[-1]["is_last"] and failed.close_code == 1000
        for got, clip in zip(fine, healthy, strict=True):
            assert not _errors(got), got.messages
            assert got.close_code == 1000 and got.finals[-1]["is_last"]
            assert clip.matches(got.final_text, 0.15), got.final_text
        if faults.mixed_failures:
            break
    # The doomed passes shared batches with the other sessions; those were decoded again
    # alone (the healthy sessions' transcripts above are right).
    assert faults.mixed_failures >= 1
    session_failures = [
        r for r in caplog.records if r.getMessage() in ("session failed", "send loop failed")
    ]
    assert not session_failures
    counted = metric(server, "pulse_stt_errors_total", kind="engine_error") - engine_errors
    assert counted == told
    assert metric(server, "pulse_stt_decode_pass_failures_total", kind="partial") >= 1


def test_the_engine_serves_new_sessions_after_the_faults(
    in_process: InProcess, clips: list[Clip]
) -> None:
    server = in_process.server
    assert in_process.ctx.engine.ready
    got = asyncio.run(_stream(server, clips[1], realtime=False))
    assert not _errors(got)
    assert clips[1].matches(got.final_text, 0.15)
    assert httpx.get(f"{server.http}/ready").status_code == 200
