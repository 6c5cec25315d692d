"""Connections that never make a request are dropped: uvicorn's HTTP protocol with a
header deadline and connection caps (uvicorn itself has no header timeout: a connection
that sends nothing, or its headers one byte at a time, stays open for good).

- **Header deadline** (`header_timeout_s`): a connection must have sent the complete
  headers of its request within this time of opening, and those of its next request
  within this time of the previous response (a kept-alive connection). Bytes arriving
  meanwhile do not extend it. Past it the connection is closed. Credentials travel in the
  headers, so no connection outlives it without having shown them; a WebSocket is handed
  to the application (which authenticates it) as soon as its headers are in.
- **Waiting cap** (`max_waiting_connections`): at most this many connections may be
  waiting for their headers at once; one more drops the one that has waited longest
  (a client that sends its request at once is through in milliseconds, so a flood of
  silent connections pushes out its own members, not real clients).
- **Connection cap** (`max_connections`): over this many open connections (HTTP and
  WebSocket together), a new one is closed at once.

Drops are logged as one warning per `_LOG_EVERY_S` at most, with the counts since the last.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, ClassVar

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

_LOG_EVERY_S = 10.0


class _DropLog:
    """Counts of dropped connections, logged at most once per `_LOG_EVERY_S`."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._last = -_LOG_EVERY_S

    def dropped(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        now = time.monotonic()
        if now - self._last >= _LOG_EVERY_S:
            self._last = now
            log.warning(
                "connections dropped: %s",
                ", ".join(f"{n} {why}" for why, n in sorted(self.counts.items())),
                extra={f"dropped_{why}": n for why, n in self.counts.items()},
            )
            self.counts = {}


class GuardedH11Protocol(H11Protocol):
    """H11Protocol with the deadline and caps above; `guarded_protocol` makes a subclass
    with the limits (and a registry of waiting connections) of one server."""

    header_timeout_s: ClassVar[float] = 10.0
    max_waiting: ClassVar[int] = 256
    max_connections: ClassVar[int] = 512
    # Connections waiting for headers, oldest first (a dict keeps insertion order).
    waiting: ClassVar[dict[GuardedH11Protocol, None]] = {}
    drops: ClassVar[_DropLog] = _DropLog()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            self.drops.dropped("over_max_connections")
            self.transport.close()
            return
        self._await_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._headers_arrived()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before:  # a request's headers are complete
            self._headers_arrived()

    def handle_websocket_upgrade(self, event: Any) -> None:
        self._headers_arrived()  # the application authenticates it from here
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        before = self.cycle
        super().on_response_complete()
        if not self.transport.is_closing() and self.cycle is before:
            self._await_headers()  # kept alive: the next request's headers are due

    def _await_headers(self) -> None:
        self._cancel_timer()
        waiting = self.waiting
        waiting.pop(self, None)
        waiting[self] = None
        while len(waiting) > self.max_waiting:
            oldest = next(iter(waiting))
            self.drops.dropped("over_max_waiting")
            oldest._drop()
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _headers_arrived(self) -> None:
        self._cancel_timer()
        self.waiting.pop(self, None)

    def _cancel_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        self.drops.dropped("header_timeout")
        self._drop()

    def _drop(self) -> None:
        self._headers_arrived()
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(
    *, header_timeout_s: float, max_waiting: int, max_connections: int
) -> type[GuardedH11Protocol]:
    """The HTTP protocol class for one server (`uvicorn.Config(http=...)`)."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {
            "header_timeout_s": header_timeout_s,
            "max_waiting": max_waiting,
            "max_connections": max_connections,
            "waiting": {},
            "drops": _DropLog(),
        },
    )
