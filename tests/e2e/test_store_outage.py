"""The database goes away under a running server (issue 20, row 4): the SQLite file locked
by another process, PostgreSQL stopped. Authenticated requests get 503 `store_unavailable`
with Retry-After at once (not 500 after 5 s), `/ready` says the store is unreachable, the
usage of sessions that end meanwhile is queued and written once the store is back, and
`/metrics` counts the failures."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.support.audio import Clip, pcm16
from tests.support.client import LIVE, chunks
from tests.support.postgres import Postgres, PostgresMissingError, local_postgres
from tests.support.prometheus import scrape_samples, value
from tests.support.server import Server, running_server

pytestmark = pytest.mark.e2e

Q = "model=pulse&language=en&sample_rate=16000&encoding=linear16"


def settles(check: Callable[[], bool], timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def metric(server: Server, name: str, **labels: str) -> float:
    samples = scrape_samples(server.http)
    if (name, tuple(sorted(labels.items()))) not in samples:
        raise AssertionError(f"{name}{labels} is not exported")
    return value(samples, name, **labels)


async def _open_session(server: Server) -> websockets.ClientConnection:
    """A session authenticated while the store is still up."""
    return await websockets.connect(
        f"{server.ws}{LIVE}?{Q}", additional_headers=server.headers(), max_size=None
    )


async def _finish_session(ws: websockets.ClientConnection, clip: Clip) -> tuple[str, int | None]:
    """Send the clip and close_stream; read until the server closes; the session_id."""
    for chunk in chunks(pcm16(clip.audio[: 3 * 16000])):
        await ws.send(chunk)
    await ws.send(json.dumps({"type": "close_stream"}))
    session_id = ""
    with contextlib.suppress(websockets.ConnectionClosed):
        async for raw in ws:
            session_id = json.loads(raw).get("session_id") or session_id
    return session_id, ws.close_code


def _assert_store_unavailable(server: Server) -> None:
    """What every authenticated entry point answers while the store is unreachable."""
    started = time.monotonic()
    rest = httpx.post(
        f"{server.http}/waves/v1/stt?language=en",
        headers={**server.headers(), "Content-Type": "audio/wav"},
        content=b"RIFF" + b"\0" * 64,
        timeout=30,
    )
    assert rest.status_code == 503, rest.text
    assert rest.json()["error"] == "store_unavailable"
    assert int(rest.headers["Retry-After"]) >= 1
    assert time.monotonic() - started < 4.5  # fails fast: not the 5 s SQLite busy wait
    tokens = httpx.post(f"{server.http}/v1/tokens", headers=server.headers(), timeout=30)
    assert tokens.status_code == 503 and tokens.json()["error"] == "store_unavailable"
    assert "Retry-After" in tokens.headers

    async def handshake() -> websockets.InvalidStatus:
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(f"{server.ws}{LIVE}?{Q}", additional_headers=server.headers())
        return refused.value

    denial = asyncio.run(handshake()).response
    assert denial.status_code == 503 and "Retry-After" in denial.headers
    assert json.loads(denial.body or b"{}")["error"] == "store_unavailable"
    assert settles(lambda: httpx.get(f"{server.http}/ready", timeout=10).status_code == 503)


def _assert_counted(server: Server) -> None:
    assert metric(server, "pulse_stt_store_failures_total", operation="auth") >= 2
    assert metric(server, "pulse_stt_store_failures_total", operation="token") >= 1
    assert metric(server, "pulse_stt_store_failures_total", operation="usage") >= 1
    # REST and the WebSocket handshake both counted under the error kind.
    assert metric(server, "pulse_stt_errors_total", kind="store_unavailable") >= 2


def test_sqlite_locked_answers_503_and_keeps_usage(tmp_path: Path, clips: list[Clip]) -> None:
    clip = clips[0]
    with running_server(tmp_path) as server:
        database = tmp_path / "pulse-stt.db"
        loop = asyncio.new_event_loop()
        try:
            ws = loop.run_until_complete(_open_session(server))
            lock = sqlite3.connect(database, isolation_level=None)
            lock.execute("BEGIN EXCLUSIVE")  # another process holds the file
            try:
                session_id, close_code = loop.run_until_complete(_finish_session(ws, clip))
                assert close_code == 1000 and session_id
                _assert_store_unavailable(server)
                _assert_counted(server)
                assert metric(server, "pulse_stt_usage_queued") >= 1
            finally:
                lock.rollback() if lock.in_transaction else None
                lock.close()
        finally:
            loop.close()

        def recorded() -> float | None:
            with contextlib.closing(sqlite3.connect(database)) as db:
                row = db.execute(
                    "SELECT audio_seconds FROM usage WHERE session_id = ?", (session_id,)
                ).fetchone()
            return None if row is None else float(row[0])

        # Back: the queued usage is written, /ready is 200, requests are served again.
        assert settles(lambda: recorded() is not None), server.log.read_text()[-3000:]
        assert recorded() == pytest.approx(3.0, abs=0.01)
        assert settles(lambda: httpx.get(f"{server.http}/ready", timeout=10).status_code == 200)
        assert httpx.post(f"{server.http}/v1/tokens", headers=server.headers()).status_code == 200
        assert metric(server, "pulse_stt_usage_queued") == 0
        assert metric(server, "pulse_stt_usage_lost_total") == 0
    assert "could not record usage" not in server.log.read_text()


# -- PostgreSQL going away --------------------------------------------------------------------


@pytest.fixture
def own_postgres() -> Iterator[Postgres]:
    """A PostgreSQL of this test's own, to stop and start."""
    try:
        with local_postgres("pulse-stt-pg-outage-") as postgres:
            yield postgres
    except PostgresMissingError as exc:
        pytest.fail(str(exc))


def test_postgres_stopped_answers_503_and_keeps_usage(
    own_postgres: Postgres, tmp_path: Path, clips: list[Clip]
) -> None:
    clip = clips[1]
    with running_server(tmp_path, database_url=own_postgres.url) as server:
        loop = asyncio.new_event_loop()
        try:
            ws = loop.run_until_complete(_open_session(server))
            own_postgres.stop()
            session_id, close_code = loop.run_until_complete(_finish_session(ws, clip))
            assert close_code == 1000 and session_id
            _assert_store_unavailable(server)
            _assert_counted(server)
        finally:
            loop.close()
            own_postgres.start()

        def recorded() -> bool:
            out = subprocess.run(
                ["psql", "-h", "127.0.0.1", "-p", str(own_postgres.port),
                 "-U", "postgres", "-d", "pstt", "-tAc",
                 f"SELECT audio_seconds FROM usage WHERE session_id = '{session_id}'"],
                capture_output=True, text=True,
            )  # fmt: skip
            return bool(out.stdout.strip())

        assert settles(recorded, timeout=30), server.log.read_text()[-3000:]
        assert settles(lambda: httpx.get(f"{server.http}/ready", timeout=10).status_code == 200)
        assert httpx.post(f"{server.http}/v1/tokens", headers=server.headers()).status_code == 200
