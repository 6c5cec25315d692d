"""The shared scheduler: every session's decode work goes through one queue to the model.

Policy: live finals first, in arrival order (a voice agent waits on every final). Then
background work, round-robin between sessions: a live session's partial (only its newest
one: a queued partial is replaced by the next, so a backed-up queue sheds stale work
instead of growing) or a whole-file request's next turns (REST: its queued turns of one
batch key decode together as one pass, then the other sessions get their turn, so a long
file cannot starve live sessions).

Batching: with a `decode_batch` function and a `batch_key`, the worker takes the job the
policy picks and, with it, up to `max_batch - 1` more queued jobs of the same key (more
finals in arrival order, or the next sessions' partials in round-robin order), and runs
them as one pass. The partial cadence adapts to load by itself: while a session waits
for the worker, its partials are coalesced to the newest, so each session gets about one
partial per batch round however many sessions there are.

Faults: a pass that raises fails only its own jobs' futures; when a batch pass raises,
its jobs are decoded again one by one, so one bad job does not fail the other sessions
batched with it. A worker thread that dies anyway (a failure outside the pass, or a
`BaseException` from it) first fails the futures of the batch it held, then a new
worker takes its place: no future is ever left waiting, and the pool keeps its size.

Time: the age of queued finals and the length of passes are read from one clock,
`time.monotonic` unless the caller hands another (tests advance a fake one).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass

from pulse_stt.engine.types import DecodeJob, Hypothesis
from pulse_stt.protocol import PassKind

log = logging.getLogger(__name__)

DecodeFn = Callable[[DecodeJob], Hypothesis]
BatchDecodeFn = Callable[[list[DecodeJob]], list["Hypothesis | BaseException"]]
BatchKeyFn = Callable[[DecodeJob], object]
_Item = tuple[DecodeJob, "Future[Hypothesis | None]"]


@dataclass(frozen=True)
class QueueDepth:
    """Jobs waiting for a worker: live finals, and everything else (partials, speculative
    finals, whole-file passes)."""

    finals: int
    background: int


@dataclass(frozen=True)
class PassReport:
    """One decoding pass, as the scheduler's observer sees it."""

    kind: PassKind
    batch_size: int
    seconds: float
    failed: bool


PassObserver = Callable[[PassReport], None]
Clock = Callable[[], float]  # seconds, monotonic


def pass_kind(job: DecodeJob) -> PassKind:
    """Whole-file passes are `file`; final-quality live passes (speculative ones included,
    they decode exactly as a final) are `final`; the rest `partial`."""
    return job.pass_kind


class SchedulerClosedError(RuntimeError):
    """The engine is shutting down and takes no more work."""


class DecodeScheduler:
    def __init__(
        self,
        decode: DecodeFn,
        *,
        workers: int = 1,
        name: str = "decode",
        decode_batch: BatchDecodeFn | None = None,
        batch_key: BatchKeyFn | None = None,
        max_batch: int = 8,
        observer: PassObserver | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self._decode = decode
        self._clock = clock
        self._name = name
        self._observer = observer
        self._decode_batch = decode_batch
        self._batch_key = batch_key if decode_batch is not None else None
        self._max_batch = max(1, max_batch)
        self._cond = threading.Condition()
        self._finals: deque[_Item] = deque()
        self._background: OrderedDict[str, deque[_Item]] = OrderedDict()
        # When each queued live final joined the finals queue (admission control reads the
        # oldest); weak, so a final taken or dropped leaves nothing behind.
        self._final_since: weakref.WeakKeyDictionary[Future[Hypothesis | None], float] = (
            weakref.WeakKeyDictionary()
        )
        self._closed = False
        self.worker_restarts = 0  # workers that died and were replaced
        self._threads = [self._worker(i) for i in range(workers)]
        for t in self._threads:
            t.start()

    def _worker(self, index: int) -> threading.Thread:
        return threading.Thread(target=self._run, name=f"{self._name}-{index}", daemon=True)

    def submit(self, job: DecodeJob) -> Future[Hypothesis | None]:
        """Queue a pass. A partial's future resolves to None when newer work replaced it."""
        future: Future[Hypothesis | None] = Future()
        with self._cond:
            if self._closed:
                raise SchedulerClosedError("the engine is shutting down")
            if job.batch:
                self._background.setdefault(job.session_id, deque()).append((job, future))
            elif job.is_final and not job.speculative:
                self._finals.append((job, future))
                self._final_since[future] = self._clock()
                self._drop_partial(job.session_id)  # stale now: the final covers that audio
            else:
                self._drop_partial(job.session_id)
                self._background[job.session_id] = deque([(job, future)])
            self._cond.notify()
        return future

    def submit_many(self, jobs: list[DecodeJob]) -> list[Future[Hypothesis | None]]:
        """Queue whole-file passes at once, so that an idle worker sees them all and
        decodes them as one batch instead of taking the first alone."""
        with self._cond:  # reentrant: `submit` takes it again
            return [self.submit(job) for job in jobs]

    def promote(self, future: Future[Hypothesis | None]) -> None:
        """Move a queued background job (a speculative final now owed) to the finals queue."""
        with self._cond:
            for session_id, queue in self._background.items():
                for item in queue:
                    if item[1] is future:
                        queue.remove(item)
                        if not queue:
                            del self._background[session_id]
                        self._finals.append(item)
                        self._final_since[future] = self._clock()
                        self._cond.notify()
                        return

    def cancel_session(self, session_id: str) -> None:
        """Forget a departed session's queued background work (live finals still run)."""
        with self._cond:
            for _, future in self._background.pop(session_id, ()):
                future.cancel()

    def queue_depth(self) -> int:
        depth = self.queue_depths()
        return depth.finals + depth.background

    def queue_depths(self) -> QueueDepth:
        with self._cond:
            return QueueDepth(len(self._finals), sum(len(q) for q in self._background.values()))

    def oldest_final_wait(self) -> float:
        """Seconds the oldest queued live final has waited for a worker; 0 when none waits.
        How far the engine is behind on what open sessions are owed (admission control)."""
        with self._cond:
            since = self._final_since.get(self._finals[0][1]) if self._finals else None
        return 0.0 if since is None else max(0.0, self._clock() - since)

    @property
    def running(self) -> bool:
        """Taking work and able to do it: not closed, and every worker thread alive."""
        return not self._closed and all(t.is_alive() for t in self._threads)

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

    def _next(self) -> list[_Item] | None:
        with self._cond:
            while not self._finals and not self._background:
                if self._closed:
                    return None
                self._cond.wait()
            return self._take_finals() if self._finals else self._take_background()

    def _same_key(self, first: DecodeJob) -> Callable[[DecodeJob], bool]:
        batch_key = self._batch_key
        if batch_key is None or self._max_batch == 1:
            return lambda _job: False
        try:
            key = batch_key(first)
        except Exception:  # jobs already taken off the queue must not be lost: no batching
            log.exception("batch key failed; decoding without batching")
            return lambda _job: False

        def joins(job: DecodeJob) -> bool:
            try:
                return bool(batch_key(job) == key)
            except Exception:
                log.exception("batch key failed; decoding without batching")
                return False

        return joins

    def _batch_limit(self, waiting: int) -> int:
        """Share what is waiting among the workers: two half batches finish sooner than one
        whole batch while the other worker idles (or takes the next work that arrives)."""
        return max(1, min(self._max_batch, -(-waiting // len(self._threads))))

    def _take_finals(self) -> list[_Item]:
        limit = self._batch_limit(len(self._finals))
        batch = [self._finals.popleft()]
        joins = self._same_key(batch[0][0])
        kept: deque[_Item] = deque()
        while self._finals:
            item = self._finals.popleft()
            if len(batch) < limit and joins(item[0]):
                batch.append(item)
            else:
                kept.append(item)
        self._finals = kept
        return batch

    def _take_background(self) -> list[_Item]:
        limit = self._batch_limit(sum(len(q) for q in self._background.values()))
        batch: list[_Item] = []
        joins: Callable[[DecodeJob], bool] | None = None
        for session_id in list(self._background):
            queue = self._background[session_id]
            if batch and (len(batch) >= limit or not joins or not joins(queue[0][0])):
                continue
            batch.append(queue.popleft())
            if joins is None:
                joins = self._same_key(batch[0][0])
            # A whole file's queued turns decode together (a batch is its cheapest pass).
            while queue and len(batch) < limit and queue[0][0].batch and joins(queue[0][0]):
                batch.append(queue.popleft())
            del self._background[session_id]
            if queue:  # more batch work: back of the line, behind the other sessions
                self._background[session_id] = queue
        return batch

    def _run(self) -> None:
        items: list[_Item] | None = None
        try:
            while (items := self._next()) is not None:
                self._run_batch(items)
        except BaseException as exc:  # the worker dies: what it held must not wait forever
            log.exception("decode worker %s failed", threading.current_thread().name)
            died = RuntimeError(f"the decode worker failed while running this job: {exc!r}")
            for _, future in items or ():
                with contextlib.suppress(InvalidStateError):  # done or cancelled already
                    future.set_exception(died)
        finally:
            self._replace_if_dead()

    def _replace_if_dead(self) -> None:
        """Called by a worker thread on its way out: unless the scheduler is closing, start
        a new worker in its place."""
        current = threading.current_thread()
        with self._cond:
            if self._closed or current not in self._threads:
                return
            index = self._threads.index(current)
            replacement = self._worker(index)
            self._threads[index] = replacement
            self.worker_restarts += 1
            log.warning("decode worker %s replaced", current.name)
            replacement.start()

    def _run_batch(self, items: list[_Item]) -> None:
        items = [(job, f) for job, f in items if f.set_running_or_notify_cancel()]
        if not items:
            return
        jobs = [job for job, _ in items]
        started = self._clock()
        try:
            if self._decode_batch is not None:
                results = self._decode_batch(jobs)
                if len(results) != len(jobs):
                    raise RuntimeError(f"a batch of {len(jobs)} gave {len(results)} results")
            else:
                results = [self._decode_one(job) for job in jobs]
        except Exception as exc:  # one bad pass must not take the worker down
            if len(jobs) == 1:
                log.exception("decode pass failed for session %s", jobs[0].session_id)
                results = [exc]
            else:  # find the job that failed it: the others still get their results
                log.exception("decode pass failed for %d jobs; decoding them one by one", len(jobs))
                results = [self._decode_one(job) for job in jobs]
        self._report(items[0][0], len(items), self._clock() - started, results)
        for (_, future), result in zip(items, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)

    def _report(
        self,
        first: DecodeJob,
        size: int,
        seconds: float,
        results: list[Hypothesis | BaseException],
    ) -> None:
        if self._observer is None:
            return
        failed = any(isinstance(r, BaseException) for r in results)
        try:
            self._observer(PassReport(pass_kind(first), size, seconds, failed))
        except Exception:  # watching must never break decoding
            log.exception("pass observer failed")

    def _decode_one(self, job: DecodeJob) -> Hypothesis | BaseException:
        try:
            return self._decode(job)
        except Exception as exc:
            log.exception("decode pass failed for session %s", job.session_id)
            return exc
