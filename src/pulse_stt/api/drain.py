"""Draining: the live WebSocket sessions of one server, whether it is shutting down, and
the 503 that new work gets meanwhile.

The registry and the refusal only: the signal handling and the drain sequence that use
them are `GracefulServer` (api/shutdown.py), which the CLI runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol

from starlette.responses import JSONResponse

from pulse_stt.protocol import ErrorKind

RETRY_AFTER_S = 5
UNAVAILABLE_BODY = {
    "status": "error",
    "error": ErrorKind.UNAVAILABLE,
    "message": "the server is shutting down and takes no new sessions or requests; retry in a "
    f"few seconds (after {RETRY_AFTER_S} s, or at once through a load balancer, which sends "
    "it to another server).",
}


def unavailable_response() -> JSONResponse:
    """503 for a WebSocket handshake or a REST request that arrives while draining."""
    return JSONResponse(
        UNAVAILABLE_BODY, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)}
    )


class DrainableSession(Protocol):
    def drain(self) -> None:
        """End the session as close_stream would (its open turn's final is sent, as its last
        message), then close it with 1001."""

    def abort(self) -> None:
        """Stop waiting for what the session still owes; close it with 1001 now."""


class SessionDrain:
    """The live WebSocket sessions of one server, and whether it is shutting down.

    Used from the event loop only, except `begin()`, which a signal handler may call: it
    only sets a flag.
    """

    def __init__(self) -> None:
        self._sessions: set[DrainableSession] = set()
        self.draining = False

    def __len__(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[DrainableSession]:
        return list(self._sessions)

    def add(self, session: DrainableSession) -> None:
        self._sessions.add(session)
        if self.draining:  # its handshake passed just before the drain began
            session.drain()

    def discard(self, session: DrainableSession) -> None:
        self._sessions.discard(session)

    def begin(self) -> None:
        """Refuse new work from now on (and answer /ready with 503)."""
        self.draining = True

    def drain_all(self) -> int:
        """Ask every live session (and any that is added later) to end; returns how many."""
        self.draining = True
        sessions = self.sessions()
        for session in sessions:
            session.drain()
        return len(sessions)

    def abort_all(self) -> int:
        sessions = self.sessions()
        for session in sessions:
            session.abort()
        return len(sessions)

    async def wait_empty(
        self, until: float, *, stop: Callable[[], bool] = lambda: False, poll_s: float = 0.05
    ) -> bool:
        """Wait until every session is gone, the loop's clock reaches `until`, or `stop()`;
        returns whether every session is gone."""
        loop = asyncio.get_running_loop()
        while self._sessions and loop.time() < until and not stop():
            await asyncio.sleep(poll_s)
        return not self._sessions
