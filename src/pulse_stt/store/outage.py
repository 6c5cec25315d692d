"""When the database is unreachable: fail fast with 503, say so on `/ready`, keep usage.

A locked SQLite file or a PostgreSQL server that went away is an outage of a dependency,
not a bug in a request: authenticated requests get **503 `store_unavailable`** with
`Retry-After` (a WebSocket before the upgrade), `/ready` answers 503 while the store
cannot be read, and `pulse_stt_store_failures_total{operation}` counts every failed call.

Usage is never dropped because of an outage: a record that cannot be written is queued
in memory (bounded: `usage_queue_max` records; when full the oldest is dropped, counted in
`pulse_stt_usage_lost_total` and logged) and a background thread writes the queue, with
backoff, once the store answers again; on shutdown it gets a last chance to be written.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from pulse_stt.store.db import Store, utc_now

log = logging.getLogger(__name__)

T = TypeVar("T")

# What a database that is down, locked or unreachable raises (not a bug in a query).
STORE_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,  # SQLite "database is locked", PostgreSQL connection refused/closed
    InterfaceError,
    DisconnectionError,
    PoolTimeoutError,  # no connection from the pool in time
    TimeoutError,  # our own deadline (asyncio.wait_for)
)


class StoreUnavailableError(Exception):
    """The store could not answer (down, locked, or past its deadline)."""


def connect_args(url: str, timeout_s: float) -> dict[str, Any]:
    """Driver options so that a locked or unreachable store fails within about `timeout_s`
    instead of the drivers' defaults (SQLite waits 5 s on a lock, libpq forever to
    connect). Options the URL sets itself win."""
    parsed = make_url(url)
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite" and "timeout" not in parsed.query:
        return {"timeout": timeout_s}
    postgres = backend == "postgresql" and driver in ("psycopg", "psycopg2")
    if postgres and "connect_timeout" not in parsed.query:
        return {"connect_timeout": max(2, round(timeout_s))}  # libpq: whole seconds, >= 2
    return {}


class StoreGuard:
    """Runs store calls with a deadline, turns outages into `StoreUnavailableError`, counts
    them, and remembers whether the store answered lately (for `/ready`)."""

    def __init__(
        self,
        store: Store,
        *,
        timeout_s: float,
        on_failure: Callable[[str], None] = lambda operation: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.timeout_s = timeout_s
        self._on_failure = on_failure
        self._clock = clock
        self._failed_at: float | None = None  # last failure; None once a call succeeded
        self._probed_at = float("-inf")
        self._probing: asyncio.Task[bool] | None = None

    @property
    def available(self) -> bool:
        return self._failed_at is None

    def failed(self, operation: str, exc: BaseException) -> None:
        if self._failed_at is None:
            log.error("the store is unreachable (%s): %s", operation, exc or type(exc).__name__)
        self._failed_at = self._clock()
        self._on_failure(operation)

    def succeeded(self) -> None:
        if self._failed_at is not None:
            log.warning("the store is reachable again")
        self._failed_at = None

    async def call(self, operation: str, work: Awaitable[T]) -> T:
        """Await `work` (a store call run in a thread) within the deadline."""
        try:
            result = await asyncio.wait_for(work, self.timeout_s + 1.0)
        except STORE_ERRORS as exc:
            self.failed(operation, exc)
            raise StoreUnavailableError(str(exc)) from exc
        self.succeeded()
        return result

    async def reachable(self) -> bool:
        """For `/ready`: whether the store answers a read now (probed at most once a
        second; a recent failure answers False at once)."""
        now = self._clock()
        if self._failed_at is not None and now - self._failed_at < 1.0:
            return False
        if now - self._probed_at < 1.0 and self._probing is None:
            return self.available
        if self._probing is None:
            self._probed_at = now
            self._probing = asyncio.ensure_future(self._probe())
        try:
            return await asyncio.shield(self._probing)
        finally:
            if self._probing is not None and self._probing.done():
                self._probing = None

    async def _probe(self) -> bool:
        try:
            await self.call("probe", asyncio.to_thread(self.store.active_key_count))
        except StoreUnavailableError:
            return False
        return True


@dataclass(frozen=True)
class UsageRecord:
    key_id: int
    session_id: str
    endpoint: str
    audio_seconds: float
    started_at: datetime
    ended_at: datetime
    external_session_id: str | None = None


class UsageRecorder:
    """Writes usage now if the store answers, else queues it (bounded) and writes the
    queue from a background thread, with backoff, when the store is back."""

    def __init__(
        self,
        guard: StoreGuard,
        *,
        max_queued: int = 10_000,
        on_lost: Callable[[int], None] = lambda count: None,
        retry_s: tuple[float, float] = (0.5, 5.0),
    ) -> None:
        self._guard = guard
        self._max = max_queued
        self._on_lost = on_lost
        self._retry_min, self._retry_max = retry_s
        self._queue: deque[UsageRecord] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None
        self.lost = 0

    def __len__(self) -> int:
        return len(self._queue)

    async def record(
        self,
        *,
        key_id: int,
        session_id: str,
        endpoint: str,
        audio_seconds: float,
        started_at: datetime,
        external_session_id: str | None = None,
    ) -> None:
        """Record one session's or request's usage; never raises for an outage."""
        usage = UsageRecord(
            key_id, session_id, endpoint, audio_seconds, started_at, utc_now(), external_session_id
        )
        if not self._queue:  # nothing waiting: write it now (callers may read it at once)
            try:
                await asyncio.to_thread(self._write, usage)
            except STORE_ERRORS as exc:
                self._guard.failed("usage", exc)
            else:
                self._guard.succeeded()
                return
        self._enqueue(usage)

    def _write(self, usage: UsageRecord) -> None:
        self._guard.store.record_usage(
            key_id=usage.key_id,
            session_id=usage.session_id,
            endpoint=usage.endpoint,
            audio_seconds=usage.audio_seconds,
            started_at=usage.started_at,
            ended_at=usage.ended_at,
            external_session_id=usage.external_session_id,
        )

    def _enqueue(self, usage: UsageRecord) -> None:
        dropped: UsageRecord | None = None
        with self._lock:
            if len(self._queue) >= self._max:
                dropped = self._queue.popleft()
                self.lost += 1
            self._queue.append(usage)
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._flush_loop, name="usage-flush", daemon=True
                )
                self._thread.start()
        if dropped is not None:
            self._on_lost(1)
            log.error(
                "usage lost: the store is unreachable and %d records are queued",
                self._max,
                extra={"session_id": dropped.session_id, "audio_s": dropped.audio_seconds},
            )
        else:
            log.warning("usage queued until the store is reachable", extra={"queued": len(self)})
        self._wake.set()

    def flush_once(self) -> bool:
        """Write the queue in order; False at the first outage (the rest stays queued)."""
        while self._queue:
            usage = self._queue[0]
            try:
                self._write(usage)
            except STORE_ERRORS as exc:
                self._guard.failed("usage", exc)
                return False
            except Exception:  # not an outage: this record can never be written
                log.exception("usage record refused by the store; dropped")
                self.lost += 1
                self._on_lost(1)
            self._guard.succeeded()
            with self._lock:
                if self._queue and self._queue[0] is usage:
                    self._queue.popleft()
        return True

    def _flush_loop(self) -> None:
        delay = self._retry_min
        while True:
            self._wake.wait()
            self._wake.clear()
            while self._queue and not self._closing:
                if self.flush_once():
                    delay = self._retry_min
                    log.warning("queued usage written")
                    break
                self._wake.wait(delay)  # close() wakes it early
                self._wake.clear()
                delay = min(delay * 2, self._retry_max)
            if self._closing:
                return

    def close(self, timeout_s: float = 5.0) -> None:
        """Shutting down: a last attempt to write what is queued; what cannot be is logged
        as lost."""
        self._closing = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        while self._queue and time.monotonic() < deadline:
            if self.flush_once():
                break
            time.sleep(0.2)
        if self._queue:
            lost = len(self._queue)
            seconds = round(sum(u.audio_seconds for u in self._queue), 3)
            self.lost += lost
            self._on_lost(lost)
            log.error(
                "usage lost at shutdown: the store is unreachable",
                extra={
                    "records": lost,
                    "audio_s": seconds,
                },
            )
