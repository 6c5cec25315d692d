"""What one WebSocket session owes its client, in order, with the bytes it holds counted.

The receive loop puts work in (decodes to await, messages to write) and never blocks on
a single put; the send loop takes items out in order and calls `done()` once an item is
written. The backlog (bytes of every item not yet written, the one being written
included) bounds the session's memory:

- `room()` waits while the backlog is over the limit: the receive loop calls it before
  reading the next frame, so a client that sends faster than the server can answer (or
  that does not read) is slowed down by TCP instead of growing the server's memory.
- A queued partial is dropped when a newer partial of the same turn is queued: it would
  be stale by the time it is written (what a client that reads slowly needs least).
  Only items not yet taken are dropped, and only partials: finals never are.
- `abandon()` (the client is gone or does not read) frees everything at once and wakes
  whoever waits.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(eq=False)  # removed by identity: items (numpy arrays inside) never compare
class _Entry(Generic[T]):
    item: T
    size: int
    partial_of: int | None  # the turn, for a partial that a newer one replaces


class OutboxClosedError(RuntimeError):
    """The outbox was abandoned: nothing more will be taken from it."""


class Outbox(Generic[T]):
    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self._entries: deque[_Entry[T]] = deque()
        self._backlog = 0
        self._in_flight = 0  # bytes of the item taken and not yet done
        self._filled = asyncio.Event()  # set while entries wait to be taken
        self._room = asyncio.Event()  # set while the backlog is within the limit
        self._room.set()
        self._abandoned = False
        self.dropped_partials = 0

    @property
    def backlog_bytes(self) -> int:
        return self._backlog

    @property
    def abandoned(self) -> bool:
        return self._abandoned

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, item: T, size: int, *, partial_of: int | None = None) -> None:
        """Queue `item`, counted as `size` bytes. `partial_of`: the turn of a partial; a
        queued partial of the same turn is dropped (it is stale now)."""
        if self._abandoned:
            return
        if partial_of is not None:
            self._drop_partial(partial_of)
        self._entries.append(_Entry(item, size, partial_of))
        self._grow(size)
        self._filled.set()

    async def get(self) -> T:
        """The next item, in order; releases the previous one if `done()` was not called."""
        self.done()
        while not self._entries:
            if self._abandoned:
                raise OutboxClosedError("the outbox was abandoned")
            self._filled.clear()
            await self._filled.wait()
        entry = self._entries.popleft()
        self._in_flight = entry.size  # still held until written
        return entry.item

    def done(self) -> None:
        """The item taken last is written: its bytes are free."""
        if self._in_flight:
            self._grow(-self._in_flight)
            self._in_flight = 0

    async def room(self) -> bool:
        """Wait until the backlog is within the limit; False when the outbox was abandoned."""
        while not self._room.is_set():
            await self._room.wait()
        return not self._abandoned

    def abandon(self) -> None:
        """Nothing more will be written: forget every item and wake every waiter."""
        self._abandoned = True
        self._entries.clear()
        self._backlog = self._in_flight = 0
        self._room.set()
        self._filled.set()

    def _drop_partial(self, turn: int) -> None:
        for entry in self._entries:
            if entry.partial_of == turn:
                self._entries.remove(entry)
                self._grow(-entry.size)
                self.dropped_partials += 1
                return  # at most one: each put of a partial drops its predecessor

    def _grow(self, size: int) -> None:
        self._backlog += size
        if self._backlog > self.limit_bytes:
            self._room.clear()
        else:
            self._room.set()
