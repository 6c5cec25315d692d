"""A store that is unreachable (issue 20, row 4): 503 `store_unavailable` with Retry-After
instead of 500, `/ready` 503, usage queued (bounded) and written when the store is back,
failures counted; and the driver timeouts that make a locked SQLite file fail fast."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError
from starlette.testclient import TestClient, WebSocketDenialResponse

from pulse_stt.api.app import create_app
from pulse_stt.api.auth import FailedLogins
from pulse_stt.api.drain import SessionDrain
from pulse_stt.config import Settings
from pulse_stt.ops.metrics import ServerMetrics
from pulse_stt.protocol import ErrorKind
from pulse_stt.store.db import Store
from pulse_stt.store.outage import (
    StoreGuard,
    StoreUnavailableError,
    UsageRecorder,
    connect_args,
)

KEY = "pstt_unit_outage_key_0123456789abcdef"


def _down(*args: Any, **kwargs: Any) -> Any:
    raise OperationalError("SELECT 1", {}, Exception("database is locked"))


class FlakyStore:
    """A store that is down while `down` is true; records what it wrote."""

    def __init__(self) -> None:
        self.down = True
        self.written: list[dict[str, Any]] = []

    def _check(self) -> None:
        if self.down:
            _down()

    def authenticate(self, secret: str) -> Any:
        self._check()
        return SimpleNamespace(id=1, name="k") if secret == KEY else None

    def authenticate_token(self, secret: str) -> Any:
        self._check()
        return None

    def mint_token(self, key_id: int, ttl_s: float) -> Any:
        self._check()
        raise AssertionError("not reached in these tests")

    def active_key_count(self) -> int:
        self._check()
        return 1

    def record_usage(self, **usage: Any) -> None:
        self._check()
        self.written.append(usage)


def _context(store: FlakyStore) -> SimpleNamespace:
    metrics = ServerMetrics()
    guard = StoreGuard(store, timeout_s=1.0, on_failure=metrics.store_failure)  # type: ignore[arg-type]
    return SimpleNamespace(
        settings=Settings(data_dir="/nonexistent", token_ttl_s=60),
        engine=SimpleNamespace(model_dir="/m"),
        metrics=metrics,
        drain=SessionDrain(),
        ready=True,
        store=store,
        store_guard=guard,
        failed_logins=FailedLogins(30, 30),
        usage=UsageRecorder(guard, on_lost=metrics.usage_lost.inc),
    )


def _metric(client: TestClient, line: str) -> bool:
    return line in client.get("/metrics").text


def test_every_authenticated_entry_answers_503_with_retry_after_while_the_store_is_down() -> None:
    store = FlakyStore()
    client = TestClient(create_app(_context(store)))  # type: ignore[arg-type]
    auth = {"Authorization": f"Bearer {KEY}"}
    rest = client.post("/waves/v1/stt?model=pulse", content=b"RIFF", headers=auth)
    assert rest.status_code == 503 and rest.headers["Retry-After"] == "5"
    assert rest.json()["error"] == ErrorKind.STORE_UNAVAILABLE
    tokens = client.post("/v1/tokens", headers=auth)
    assert tokens.status_code == 503 and tokens.headers["Retry-After"] == "5"
    assert tokens.json()["error"] == "store_unavailable"
    with (
        pytest.raises(WebSocketDenialResponse) as denied,
        client.websocket_connect("/waves/v1/stt/live?model=pulse", headers=auth),
    ):
        pass
    assert denied.value.status_code == 503 and denied.value.headers["Retry-After"] == "5"
    assert denied.value.json()["error"] == "store_unavailable"
    ready = client.get("/ready")
    assert ready.status_code == 503 and ready.json()["store"] == "unreachable"
    # Counted: the failed calls by operation, and both refusals under their error kind.
    assert _metric(client, 'pulse_stt_store_failures_total{operation="auth"} 2.0')
    assert _metric(client, 'pulse_stt_store_failures_total{operation="token"} 1.0')
    assert _metric(client, 'pulse_stt_errors_total{kind="store_unavailable"} 2.0')
    # Back up: /ready is 200 again (after its probe interval) and credentials are checked.
    store.down = False
    time.sleep(1.05)
    assert client.get("/ready").status_code == 200
    assert client.post("/waves/v1/stt?model=pulse", content=b"", headers={}).status_code == 401


def test_a_hanging_store_call_becomes_unavailable_at_the_deadline() -> None:
    failures: list[str] = []
    guard = StoreGuard(FlakyStore(), timeout_s=0.1, on_failure=failures.append)  # type: ignore[arg-type]

    async def scenario() -> None:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError):
            await guard.call("auth", asyncio.sleep(30))
        assert time.monotonic() - started < 1.5

    asyncio.run(scenario())
    assert failures == ["auth"] and not guard.available


def test_usage_is_queued_while_the_store_is_down_and_written_when_it_is_back() -> None:
    store = FlakyStore()
    lost: list[int] = []
    failures: list[str] = []
    guard = StoreGuard(store, timeout_s=1.0, on_failure=failures.append)  # type: ignore[arg-type]
    usage = UsageRecorder(guard, on_lost=lost.append, retry_s=(0.02, 0.05))
    started = datetime.now(UTC) - timedelta(seconds=10)

    async def record(session: str) -> None:
        await usage.record(
            key_id=1, session_id=session, endpoint="/live", audio_seconds=2.5, started_at=started
        )

    asyncio.run(record("s1"))
    asyncio.run(record("s2"))
    assert len(usage) == 2 and store.written == [] and "usage" in failures
    ended_during_outage = datetime.now(UTC)
    time.sleep(0.2)  # retried meanwhile: still down
    assert len(usage) == 2
    store.down = False
    deadline = time.monotonic() + 5
    while len(usage) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [u["session_id"] for u in store.written] == ["s1", "s2"]
    # Each keeps the time its session ended, not the time it was written.
    assert all(u["ended_at"] <= ended_during_outage for u in store.written)
    assert lost == [] and guard.available
    usage.close()


def test_the_usage_queue_is_bounded_and_counts_what_it_drops() -> None:
    store = FlakyStore()
    lost: list[int] = []
    guard = StoreGuard(store, timeout_s=1.0)  # type: ignore[arg-type]
    usage = UsageRecorder(guard, max_queued=3, on_lost=lost.append, retry_s=(5.0, 5.0))

    async def record(n: int) -> None:
        for i in range(n):
            await usage.record(
                key_id=1,
                session_id=f"s{i}",
                endpoint="/live",
                audio_seconds=1.0,
                started_at=datetime.now(UTC),
            )

    asyncio.run(record(5))
    assert len(usage) == 3 and sum(lost) == 2 and usage.lost == 2
    store.down = False
    usage.close(timeout_s=2.0)  # shutdown flushes what is queued
    assert [u["session_id"] for u in store.written] == ["s2", "s3", "s4"]


def test_usage_still_queued_at_shutdown_is_counted_as_lost() -> None:
    lost: list[int] = []
    usage = UsageRecorder(StoreGuard(FlakyStore(), timeout_s=1.0), on_lost=lost.append)  # type: ignore[arg-type]
    asyncio.run(
        usage.record(
            key_id=1,
            session_id="s",
            endpoint="/live",
            audio_seconds=1.0,
            started_at=datetime.now(UTC),
        )
    )
    usage.close(timeout_s=0.3)
    assert sum(lost) == 1


def test_a_locked_sqlite_file_fails_within_the_store_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    store = Store(url, connect_args=connect_args(url, 0.3))
    try:
        _, secret = store.create_key("alice")
        lock = sqlite3.connect(tmp_path / "keys.db", isolation_level=None)
        lock.execute("BEGIN EXCLUSIVE")
        try:
            started = time.monotonic()
            with pytest.raises(OperationalError):
                store.authenticate(secret)
            assert time.monotonic() - started < 2.0  # not SQLite's default 5 s
        finally:
            lock.rollback()
            lock.close()
        assert store.authenticate(secret) is not None
    finally:
        store.close()


def test_driver_timeouts_by_url() -> None:
    assert connect_args("sqlite:////tmp/x.db", 2.0) == {"timeout": 2.0}
    assert connect_args("sqlite:////tmp/x.db?timeout=9", 2.0) == {}
    assert connect_args("postgresql+psycopg://u@h/db", 2.0) == {"connect_timeout": 2}
    assert connect_args("postgresql+psycopg://u@h/db", 0.5) == {"connect_timeout": 2}
    assert connect_args("postgresql+psycopg://u@h/db?connect_timeout=7", 2.0) == {}


def test_a_websocket_handshake_that_fails_on_a_bug_is_counted() -> None:
    store = FlakyStore()
    store.down = False
    store.authenticate = lambda secret: 1 / 0  # type: ignore[method-assign]
    client = TestClient(create_app(_context(store)), raise_server_exceptions=False)  # type: ignore[arg-type]
    with (
        pytest.raises(Exception),  # noqa: B017,PT011 - the server answers 500 or drops it
        client.websocket_connect(
            "/waves/v1/stt/live?model=pulse", headers={"Authorization": f"Bearer {KEY}"}
        ),
    ):
        pass
    assert _metric(client, 'pulse_stt_errors_total{kind="internal"} 1.0')
