"""The shared scheduler: every session's decode work goes through one queue to the model.

Policy: live finals first, in arrival order (a voice agent waits on every final). Then
background work, round-robin between sessions: a live session's partial (only its newest
one: a queued partial is replaced by the next, so a backed-up queue sheds stale work
instead of growing) or a whole-file request's next batch pass (REST: one pass per turn,
so a long file cannot starve live sessions).
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
_Item = tuple[DecodeJob, "Future[Hypothesis | None]"]


class SchedulerClosedError(RuntimeError):
    """The engine is shutting down and takes no more work."""


class DecodeScheduler:
    def __init__(self, decode: DecodeFn, *, workers: int = 1, name: str = "decode") -> None:
        self._decode = decode
        self._cond = threading.Condition()
        self._finals: deque[_Item] = deque()
        self._background: OrderedDict[str, deque[_Item]] = OrderedDict()
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
            if job.batch:
                self._background.setdefault(job.session_id, deque()).append((job, future))
            elif job.is_final:
                self._finals.append((job, future))
                self._drop_partial(job.session_id)  # stale now: the final covers that audio
            else:
                self._drop_partial(job.session_id)
                self._background[job.session_id] = deque([(job, future)])
            self._cond.notify()
        return future

    def cancel_session(self, session_id: str) -> None:
        """Forget a departed session's queued background work (live finals still run)."""
        with self._cond:
            for _, future in self._background.pop(session_id, ()):
                future.cancel()

    def queue_depth(self) -> int:
        with self._cond:
            return len(self._finals) + sum(len(q) for q in self._background.values())

    def close(self, timeout: float = 30.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for t in self._threads:
            t.join(timeout)

    def _drop_partial(self, session_id: str) -> None:
        queued = self._background.pop(session_id, None)
        for _, future in queued or ():
            if not future.done():  # the caller may have cancelled it already
                future.set_result(None)

    def _next(self) -> _Item | None:
        with self._cond:
            while not self._finals and not self._background:
                if self._closed:
                    return None
                self._cond.wait()
            if self._finals:
                return self._finals.popleft()
            session_id, queue = next(iter(self._background.items()))
            item = queue.popleft()
            del self._background[session_id]
            if queue:  # more batch work: back of the line, behind the other sessions
                self._background[session_id] = queue
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
