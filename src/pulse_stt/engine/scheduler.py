"""The shared scheduler: every session's decode work goes through one queue to the model.

Policy: finals before partials (a voice agent waits on every final); finals in arrival
order; partials round-robin between sessions, and a session's queued partial is replaced
by its newer one (only the newest audio matters), so a backed-up queue sheds stale work
instead of growing.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future

from pulse_stt.engine.types import DecodeJob, Hypothesis

log = logging.getLogger(__name__)

DecodeFn = Callable[[DecodeJob], Hypothesis]


class SchedulerClosedError(RuntimeError):
    """The engine is shutting down and takes no more work."""


class DecodeScheduler:
    def __init__(self, decode: DecodeFn, *, workers: int = 1, name: str = "decode") -> None:
        self._decode = decode
        self._cond = threading.Condition()
        self._finals: deque[tuple[DecodeJob, Future[Hypothesis | None]]] = deque()
        self._partials: OrderedDict[str, tuple[DecodeJob, Future[Hypothesis | None]]] = (
            OrderedDict()
        )
        self._closed = False
        self._threads = [
            threading.Thread(target=self._run, name=f"{name}-{i}", daemon=True)
            for i in range(workers)
        ]
        for t in self._threads:
            t.start()

    def submit(self, job: DecodeJob) -> Future[Hypothesis | None]:
        """Queue a pass. A partial's future resolves to None when newer work replaced it."""
        future: Future[Hypothesis | None] = Future()
        with self._cond:
            if self._closed:
                raise SchedulerClosedError("the engine is shutting down")
            if job.is_final:
                self._finals.append((job, future))
                self._drop_partial(job.session_id)  # stale now: the final covers that audio
            else:
                self._drop_partial(job.session_id)
                self._partials[job.session_id] = (job, future)
            self._cond.notify()
        return future

    def cancel_session(self, session_id: str) -> None:
        """Forget queued partial work of a session that went away (finals still run)."""
        with self._cond:
            self._drop_partial(session_id)

    def queue_depth(self) -> int:
        with self._cond:
            return len(self._finals) + len(self._partials)

    def close(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    def _drop_partial(self, session_id: str) -> None:
        queued = self._partials.pop(session_id, None)
        if queued is not None:
            queued[1].set_result(None)

    def _next(self) -> tuple[DecodeJob, Future[Hypothesis | None]] | None:
        with self._cond:
            while not self._finals and not self._partials:
                if self._closed:
                    return None
                self._cond.wait()
            if self._finals:
                return self._finals.popleft()
            _, item = self._partials.popitem(last=False)  # oldest waiting session first
            return item

    def _run(self) -> None:
        while (item := self._next()) is not None:
            job, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(self._decode(job))
            except Exception as exc:  # one bad pass must not take the worker down
                log.exception("decode pass failed for session %s", job.session_id)
                future.set_exception(exc)
