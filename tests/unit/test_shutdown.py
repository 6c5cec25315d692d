"""`pulse_stt.api.drain` (the session registry, the refusals while draining) and
`pulse_stt.api.shutdown` (the signal handling and the drain sequence of `GracefulServer`),
with stand-in sessions (no model).
tests/e2e/test_shutdown.py does the same to a real server with real sessions."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from types import SimpleNamespace

import pytest
import uvicorn
from starlette.testclient import TestClient, WebSocketDenialResponse
from uvicorn.lifespan.off import LifespanOff

from pulse_stt.api.app import create_app
from pulse_stt.api.drain import SessionDrain
from pulse_stt.api.shutdown import GracefulServer
from pulse_stt.api.webhook import WebhookJobs
from pulse_stt.config import Settings
from pulse_stt.ops.metrics import ServerMetrics


class FakeSession:
    """A session that needs `finish_s` to send its final once asked to drain (None: it
    never finishes by itself), and leaves the registry when it is done."""

    def __init__(self, registry: SessionDrain, finish_s: float | None = 0.05) -> None:
        self.registry = registry
        self.finish_s = finish_s
        self.drained_at: float | None = None
        self.aborted_at: float | None = None
        registry.add(self)

    def drain(self) -> None:
        if self.drained_at is not None:
            return
        self.drained_at = time.monotonic()
        if self.finish_s is not None:
            asyncio.get_running_loop().call_later(self.finish_s, self.registry.discard, self)

    def abort(self) -> None:
        self.aborted_at = time.monotonic()
        self.registry.discard(self)


# -- the registry ----------------------------------------------------------------------------


def test_drain_all_asks_every_session_and_any_that_arrives_later() -> None:
    async def scenario() -> None:
        registry = SessionDrain()
        first, second = FakeSession(registry), FakeSession(registry)
        assert not registry.draining and first.drained_at is None
        assert registry.drain_all() == 2
        assert registry.draining and first.drained_at and second.drained_at
        late = FakeSession(registry)  # its handshake passed just before the drain began
        assert late.drained_at is not None
        assert await registry.wait_empty(asyncio.get_running_loop().time() + 2)

    asyncio.run(scenario())


def test_wait_empty_gives_up_at_its_deadline_or_when_stopped() -> None:
    async def scenario() -> None:
        registry = SessionDrain()
        stuck = FakeSession(registry, finish_s=None)
        registry.drain_all()
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert not await registry.wait_empty(started + 0.2)
        assert 0.2 <= loop.time() - started < 1
        assert not await registry.wait_empty(loop.time() + 10, stop=lambda: True)
        assert registry.abort_all() == 1 and stuck.aborted_at is not None
        assert len(registry) == 0

    asyncio.run(scenario())


def test_begin_only_sets_the_flag() -> None:
    registry = SessionDrain()
    session = FakeSession(registry)
    registry.begin()  # what a signal handler calls: no session is touched
    assert registry.draining and len(registry) == 1
    assert session.drained_at is None and session.aborted_at is None


# -- refusals while draining -----------------------------------------------------------------


def app_client(draining: bool) -> TestClient:
    registry = SessionDrain()
    if draining:
        registry.begin()
    ctx = SimpleNamespace(
        settings=Settings(data_dir="/nonexistent"),
        engine=SimpleNamespace(model_dir="/models/whisper-base"),
        metrics=ServerMetrics(),
        drain=registry,
        ready=not draining,
    )
    return TestClient(create_app(ctx))  # type: ignore[arg-type]


def test_new_requests_get_503_with_retry_after_while_draining() -> None:
    client = app_client(draining=True)
    assert client.get("/ready").status_code == 503
    assert client.get("/health").status_code == 200  # still alive: no restart wanted
    rest = client.post("/waves/v1/stt?model=pulse", content=b"RIFF")
    assert rest.status_code == 503 and rest.headers["Retry-After"] == "5"
    assert rest.json()["error"] == "unavailable"
    assert "shutting down" in rest.json()["message"] and "retry" in rest.json()["message"]
    with (
        pytest.raises(WebSocketDenialResponse) as denied,
        client.websocket_connect("/waves/v1/stt/live?model=pulse"),
    ):
        pass
    assert denied.value.status_code == 503 and denied.value.headers["Retry-After"] == "5"
    assert denied.value.json()["error"] == "unavailable"
    metrics = client.get("/metrics").text
    assert 'pulse_stt_errors_total{kind="unavailable"} 2.0' in metrics


def test_the_refusal_comes_before_authentication() -> None:
    # No key is sent: a draining server says 503 (try elsewhere), not 401.
    client = app_client(draining=True)
    assert client.post("/waves/v1/stt?model=pulse", content=b"x").status_code == 503


# -- signals ---------------------------------------------------------------------------------


def graceful(grace_s: float, *sessions: float | None) -> tuple[GracefulServer, SimpleNamespace]:
    """A GracefulServer over a stand-in context; `sessions`: each one's finish time."""
    closed: list[str] = []
    ctx = SimpleNamespace(
        drain=SessionDrain(),
        webhooks=WebhookJobs(),
        settings=SimpleNamespace(shutdown_grace_s=grace_s),
        engine=SimpleNamespace(close=lambda: closed.append("pulse")),
        pro_engine=None,
        closed=closed,
    )
    config = uvicorn.Config(app=lambda *_: None, lifespan="off", log_config=None)
    server = GracefulServer(config, ctx)  # type: ignore[arg-type]
    server.servers = []
    server.lifespan = LifespanOff(config)
    ctx.sessions = [FakeSession(ctx.drain, finish) for finish in sessions]
    return server, ctx


def test_first_signal_drains_the_second_forces() -> None:
    server, ctx = graceful(30)
    server.handle_exit(signal.SIGTERM, None)
    assert server.should_exit and not server.force_exit
    assert ctx.drain.draining  # /ready says 503 from now on
    server.handle_exit(signal.SIGINT, None)
    assert server.force_exit


def test_signals_are_handled_and_not_raised_again_afterwards() -> None:
    """uvicorn re-raises the signal after its shutdown (exit status 143); ours exits 0."""
    server, _ = graceful(30)
    before = signal.getsignal(signal.SIGTERM)
    with server.capture_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs between bytecodes of this thread
        assert server.should_exit
    assert signal.getsignal(signal.SIGTERM) is before  # restored, nothing re-raised


# -- the drain sequence ----------------------------------------------------------------------


def test_shutdown_waits_for_every_final_then_stops_the_engine(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="pulse_stt.api.shutdown")
    server, ctx = graceful(10, 0.05, 0.3)
    started = time.monotonic()
    asyncio.run(server.shutdown())
    assert 0.3 <= time.monotonic() - started < 2
    assert all(s.drained_at and s.aborted_at is None for s in ctx.sessions)
    assert ctx.closed == ["pulse"]
    phases = [r.getMessage() for r in caplog.records if r.name == "pulse_stt.api.shutdown"]
    assert phases == ["shutdown: draining", "shutdown: sessions closed", "shutdown: done"]


def test_sessions_still_open_at_the_deadline_are_cut(caplog: pytest.LogCaptureFixture) -> None:
    server, ctx = graceful(1.0, 0.05, None)
    started = time.monotonic()
    asyncio.run(server.shutdown())
    elapsed = time.monotonic() - started
    quick, stuck = ctx.sessions
    assert quick.aborted_at is None
    assert stuck.aborted_at is not None
    # sessions get the grace period less a margin (a quarter of it here), the rest of it
    # is left for closing and for REST requests in flight
    assert 0.7 <= stuck.aborted_at - started < 1.0
    assert elapsed < 1.5
    assert "closing 1 session(s) without their final (grace period of 1s over)" in caplog.text


def test_a_second_signal_during_the_drain_cuts_at_once() -> None:
    server, ctx = graceful(30, None)

    async def shutdown_then_signal() -> None:
        task = asyncio.create_task(server.shutdown())
        await asyncio.sleep(0.2)
        server.handle_exit(signal.SIGTERM, None)  # the one that started the shutdown
        server.handle_exit(signal.SIGTERM, None)  # a second one: stop waiting
        await task

    started = time.monotonic()
    asyncio.run(shutdown_then_signal())
    assert time.monotonic() - started < 1.5
    assert ctx.sessions[0].aborted_at is not None
