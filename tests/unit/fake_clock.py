"""A clock that moves only when a test says so, for code that takes a clock callable
(`DecodeScheduler(clock=...)`, `Store(clock=...)`): a test advances time instead of
sleeping until an age or an expiry is reached."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


class FakeClock:
    """`clock()`: monotonic seconds; `clock.utc()`: the same instant as a UTC datetime.
    Safe to read from other threads (a scheduler's workers time their passes with it)."""

    def __init__(self, start: float = 1000.0) -> None:
        self._seconds = start
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self._seconds

    def utc(self) -> datetime:
        return EPOCH + timedelta(seconds=self())

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._seconds += seconds
