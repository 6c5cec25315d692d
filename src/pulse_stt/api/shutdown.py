"""Graceful shutdown: on SIGTERM or SIGINT, stop taking work, give every open WebSocket
session the final of its open turn, let REST requests in flight finish, then exit 0.

Phases, one log line each (`shutdown: ...`):

1. **draining** — the signal handler only sets a flag: `/ready` answers 503 from that
   moment, so a load balancer stops sending new work; a request that still arrives (on a
   kept-alive connection, or in the instant before the listening socket closes) is
   refused with 503 and `Retry-After`. The listening sockets are closed.
2. **sessions** — every live session is asked to drain: it ends as if the client had sent
   `close_stream` (the open turn is finalized and sent as the session's last message,
   `is_final: true, is_last: true`), then closes with 1001 (going away). Finals are
   decoded ahead of all partials, so this takes about one model pass.
3. **cut** — only if the grace period (`shutdown_grace_s`, less a small margin for closing)
   runs out, or a second signal arrives: the sessions still open are closed with 1001
   without waiting for their final.
4. **webhooks** — Pulse Pro webhook jobs in flight (transcription, then delivery with its
   retries) get what is left of the grace period (less the margin) to finish; the ones
   still running then are cancelled, logged and counted as `aborted`
   (`pulse_stt_webhook_deliveries_total{outcome="aborted"}`): their result is lost, and
   their receivers get nothing.
5. **requests** — uvicorn's own shutdown closes idle connections and lets REST requests
   in flight finish within what is left of the grace period; then the engines stop.

The session registry and the 503 it relies on are api/drain.py; this module is the
uvicorn server that runs the sequence above, and only the CLI (and tests) start it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Generator
from types import FrameType

import uvicorn
from uvicorn.server import HANDLED_SIGNALS

from pulse_stt.api.context import ServerContext

log = logging.getLogger(__name__)


class GracefulServer(uvicorn.Server):
    """uvicorn's server, with the drain sequence above before uvicorn's own shutdown; a second
    signal skips the waiting. Exits normally (status 0) after a signal: uvicorn would
    re-raise the signal once it is done, which makes the exit status 128+signal."""

    def __init__(self, config: uvicorn.Config, ctx: ServerContext) -> None:
        super().__init__(config)
        self._ctx = ctx
        self._signal: int | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # A signal handler: set flags only (no logging, no awaiting).
        if self.should_exit:
            self.force_exit = True
        else:
            self._signal = sig
            self._ctx.drain.begin()
            self.should_exit = True

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signals reach the main thread only (e.g. a server run inside tests)
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        drain = self._ctx.drain
        grace = self._ctx.settings.shutdown_grace_s
        started = loop.time()
        deadline = started + grace
        drain.begin()
        for server in self.servers:  # new connections are refused from now on
            server.close()
        cause = signal.Signals(self._signal).name if self._signal is not None else "exit"
        log.info(
            "shutdown: draining",
            extra={"cause": cause, "sessions": len(drain), "grace_s": grace},
        )
        sessions = drain.drain_all()
        # Sessions get the grace period less a margin to close and record their usage.
        margin = min(2.0, grace / 4)
        forced = lambda: self.force_exit  # noqa: E731
        drained = await drain.wait_empty(deadline - margin, stop=forced)
        if not drained:
            cut = drain.abort_all()
            log.warning(
                "shutdown: closing %d session(s) without their final (%s)",
                cut,
                "second signal" if self.force_exit else f"grace period of {grace:g}s over",
                extra={"sessions": cut},
            )
            until = min(deadline, loop.time() + 1.0) if self.force_exit else deadline
            await drain.wait_empty(until)
        log.info(
            "shutdown: sessions closed",
            extra={
                "sessions": sessions,
                "still_open": len(drain),
                "duration_s": round(loop.time() - started, 3),
            },
        )
        await self._finish_webhooks(deadline - margin)
        # uvicorn annotates this as int seconds but waits with asyncio, which takes a float.
        grace = max(0.1, deadline - loop.time())
        self.config.timeout_graceful_shutdown = grace  # type: ignore[assignment]
        await super().shutdown(sockets)
        # Whole-file requests cut by the timeout may still run in threads; a closed engine
        # ends them at their next pass, so the process does not wait for them.
        await asyncio.to_thread(self._stop_engines)
        log.info("shutdown: done", extra={"duration_s": round(loop.time() - started, 3)})

    async def _finish_webhooks(self, until: float) -> None:
        jobs = self._ctx.webhooks
        if not len(jobs):
            return
        loop = asyncio.get_running_loop()
        pending = len(jobs)
        if await jobs.wait(0.0 if self.force_exit else until - loop.time()):
            log.info("shutdown: webhook jobs finished", extra={"jobs": pending})
            return
        aborted = await jobs.abort_all()
        log.warning("shutdown: %d webhook job(s) aborted", aborted, extra={"jobs": aborted})

    def _stop_engines(self) -> None:
        for engine in (self._ctx.engine, self._ctx.pro_engine):
            if engine is not None:
                engine.close()
