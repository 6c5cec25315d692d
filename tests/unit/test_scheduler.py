"""`pulse_stt.engine.scheduler.DecodeScheduler` with a fake, step-by-step decode function."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np
import pytest

from pulse_stt.engine.scheduler import DecodeScheduler, SchedulerClosedError
from pulse_stt.engine.types import DecodeJob, Hypothesis
from pulse_stt.protocol import JobKind

TIMEOUT = 5.0


@dataclass
class TaggedJob(DecodeJob):
    """A DecodeJob that says which one it is, for checking the order of decode passes."""

    tag: str = ""


class FakeDecoder:
    """Decodes a job to its tag, but only when the test lets it (one permit per job)."""

    def __init__(self) -> None:
        self.started: queue.Queue[str] = queue.Queue()
        self.finished: list[str] = []
        self.failing: set[str] = set()
        self._permits = threading.Semaphore(0)

    def __call__(self, job: DecodeJob) -> Hypothesis:
        assert isinstance(job, TaggedJob)
        tag = job.tag
        self.started.put(tag)
        if not self._permits.acquire(timeout=TIMEOUT):
            raise TimeoutError(f"test never released {tag}")
        self.finished.append(tag)
        if tag in self.failing:
            raise RuntimeError(f"decode of {tag} failed")
        return Hypothesis(text=tag)

    def next_started(self) -> str:
        return self.started.get(timeout=TIMEOUT)

    def release(self, n: int = 1) -> None:
        for _ in range(n):
            self._permits.release()

    def run_all(self, n: int) -> list[str]:
        """Let the next `n` jobs run; returns their tags in the order they started."""
        order = []
        for _ in range(n):
            order.append(self.next_started())
            self.release()
        return order


def job(
    session: str, tag: str, *, final: bool = False, batch: bool = False, speculative: bool = False
) -> TaggedJob:
    kind = JobKind.FINAL if final else JobKind.PARTIAL
    if batch or speculative:
        kind = JobKind.FILE if batch else JobKind.SPECULATIVE
    return TaggedJob(
        session_id=session,
        audio=np.zeros(1600, dtype=np.float32),
        kind=kind,
        language="en",
        tag=tag,
    )


@pytest.fixture
def fake() -> FakeDecoder:
    return FakeDecoder()


@pytest.fixture
def scheduler(fake: FakeDecoder) -> Iterator[DecodeScheduler]:
    sched = DecodeScheduler(fake, name="test-decode")
    yield sched
    fake.release(1000)
    sched.close(timeout=TIMEOUT)


def busy(sched: DecodeScheduler, fake: FakeDecoder) -> Future[Hypothesis | None]:
    """Occupy the single worker with a blocker job so that later jobs queue up."""
    future = sched.submit(job("blocker", "blocker", final=True))
    assert fake.next_started() == "blocker"
    return future


def result(future: Future[Hypothesis | None]) -> str | None:
    hyp = future.result(timeout=TIMEOUT)
    return None if hyp is None else hyp.text


def test_runs_a_job(scheduler: DecodeScheduler, fake: FakeDecoder) -> None:
    future = scheduler.submit(job("a", "a1", final=True))
    assert fake.run_all(1) == ["a1"]
    assert result(future) == "a1"


def test_finals_before_queued_partials(scheduler: DecodeScheduler, fake: FakeDecoder) -> None:
    blocker = busy(scheduler, fake)
    futures = [
        scheduler.submit(job("a", "a-partial")),
        scheduler.submit(job("b", "b-partial")),
        scheduler.submit(job("c", "c-final", final=True)),
        scheduler.submit(job("d", "d-final", final=True)),
    ]
    assert scheduler.queue_depth() == 4
    fake.release()  # the blocker
    assert fake.run_all(4) == ["c-final", "d-final", "a-partial", "b-partial"]
    assert result(blocker) == "blocker"
    assert [result(f) for f in futures] == ["a-partial", "b-partial", "c-final", "d-final"]
    assert scheduler.queue_depth() == 0


def test_newer_partial_replaces_queued_one(scheduler: DecodeScheduler, fake: FakeDecoder) -> None:
    busy(scheduler, fake)
    old = scheduler.submit(job("a", "a1"))
    new = scheduler.submit(job("a", "a2"))
    assert old.done()  # resolved at once, not when the worker gets to it
    assert result(old) is None
    assert scheduler.queue_depth() == 1
    fake.release()
    assert fake.run_all(1) == ["a2"]
    assert result(new) == "a2"
    assert "a1" not in fake.finished


def test_partials_round_robin_between_sessions(
    scheduler: DecodeScheduler, fake: FakeDecoder
) -> None:
    busy(scheduler, fake)
    a1 = scheduler.submit(job("a", "a1"))
    scheduler.submit(job("b", "b1"))
    scheduler.submit(job("c", "c1"))
    fake.release()  # the blocker
    assert fake.next_started() == "a1"
    # while a1 runs, a sends its next partial: b and c, waiting longer, go first
    scheduler.submit(job("a", "a2"))
    fake.release()
    assert result(a1) == "a1"
    assert fake.run_all(3) == ["b1", "c1", "a2"]


def test_replaced_partial_goes_to_the_back(scheduler: DecodeScheduler, fake: FakeDecoder) -> None:
    busy(scheduler, fake)
    scheduler.submit(job("a", "a1"))
    scheduler.submit(job("b", "b1"))
    scheduler.submit(job("a", "a2"))
    fake.release()
    assert fake.run_all(2) == ["b1", "a2"]


def test_final_drops_queued_partial_of_its_session(
    scheduler: DecodeScheduler, fake: FakeDecoder
) -> None:
    busy(scheduler, fake)
    partial_a = scheduler.submit(job("a", "a-partial"))
    partial_b = scheduler.submit(job("b", "b-partial"))
    final_a = scheduler.submit(job("a", "a-final", final=True))
    assert result(partial_a) is None
    assert not partial_b.done()
    fake.release()
    assert fake.run_all(2) == ["a-final", "b-partial"]
    assert result(final_a) == "a-final"
    assert result(partial_b) == "b-partial"


def test_final_never_replaced(scheduler: DecodeScheduler, fake: FakeDecoder) -> None:
    busy(scheduler, fake)
    first = scheduler.submit(job("a", "a-final-1", final=True))
    second = scheduler.submit(job("a", "a-final-2", final=True))
    scheduler.submit(job("a", "a-partial"))
    fake.release()
    assert fake.run_all(3) == ["a-final-1", "a-final-2", "a-partial"]
    assert (result(first), result(second)) == ("a-final-1", "a-final-2")


def test_cancel_session_drops_only_partials(scheduler: DecodeScheduler, fake: FakeDecoder) -> None:
    busy(scheduler, fake)
    partial = scheduler.submit(job("a", "a-partial"))
    final = scheduler.submit(job("a", "a-final", final=True))
    other = scheduler.submit(job("b", "b-partial"))
    partial_2 = scheduler.submit(job("a", "a-partial-2"))
    scheduler.cancel_session("a")
    assert result(partial) is None  # replaced by the final
    assert partial_2.done()  # forgotten at once (cancelled, or resolved to None)
    assert partial_2.cancelled() or result(partial_2) is None
    fake.release()
    assert fake.run_all(2) == ["a-final", "b-partial"]
    assert result(final) == "a-final"
    assert result(other) == "b-partial"
    assert "a-partial-2" not in fake.finished


def test_exception_is_delivered_and_worker_survives(
    scheduler: DecodeScheduler, fake: FakeDecoder, caplog: pytest.LogCaptureFixture
) -> None:
    fake.failing.add("bad")
    busy(scheduler, fake)
    bad = scheduler.submit(job("a", "bad", final=True))
    good = scheduler.submit(job("b", "good", final=True))
    fake.release()
    assert fake.run_all(2) == ["bad", "good"]
    error = bad.exception(timeout=TIMEOUT)
    assert isinstance(error, RuntimeError)
    assert "bad" in str(error)
    assert result(good) == "good"
    # and it keeps serving afterwards
    later = scheduler.submit(job("c", "later"))
    assert fake.run_all(1) == ["later"]
    assert result(later) == "later"
    assert any("decode pass failed" in r.getMessage() for r in caplog.records)


def test_submit_after_close_raises(fake: FakeDecoder) -> None:
    sched = DecodeScheduler(fake)
    sched.close(timeout=TIMEOUT)
    with pytest.raises(SchedulerClosedError):
        sched.submit(job("a", "a1", final=True))
    with pytest.raises(SchedulerClosedError):
        sched.submit(job("a", "a2"))


def test_close_drains_queued_work(fake: FakeDecoder) -> None:
    sched = DecodeScheduler(fake)
    busy(sched, fake)
    final = sched.submit(job("a", "a-final", final=True))
    partial = sched.submit(job("b", "b-partial"))
    fake.release(3)
    sched.close(timeout=TIMEOUT)
    assert result(final) == "a-final"
    assert result(partial) == "b-partial"
    assert fake.finished == ["blocker", "a-final", "b-partial"]


def test_several_workers_run_concurrently(fake: FakeDecoder) -> None:
    sched = DecodeScheduler(fake, workers=2)
    try:
        sched.submit(job("a", "a1", final=True))
        sched.submit(job("b", "b1", final=True))
        assert {fake.next_started(), fake.next_started()} == {"a1", "b1"}
    finally:
        fake.release(2)
        sched.close(timeout=TIMEOUT)


def test_cancelled_future_is_skipped(scheduler: DecodeScheduler, fake: FakeDecoder) -> None:
    busy(scheduler, fake)
    doomed = scheduler.submit(job("a", "a-final", final=True))
    kept = scheduler.submit(job("b", "b-final", final=True))
    assert doomed.cancel()
    fake.release()
    assert fake.run_all(1) == ["b-final"]
    assert result(kept) == "b-final"
    assert "a-final" not in fake.finished


def test_cancelled_partial_does_not_break_next_submit(
    scheduler: DecodeScheduler, fake: FakeDecoder
) -> None:
    busy(scheduler, fake)
    stale = scheduler.submit(job("a", "a1"))
    assert stale.cancel()
    newer = scheduler.submit(job("a", "a2"))
    scheduler.cancel_session("b")
    fake.release()
    assert fake.run_all(1) == ["a2"]
    assert result(newer) == "a2"


# -- whole-file (batch) work ---------------------------------------------------------------


def test_batch_jobs_are_never_coalesced(scheduler: DecodeScheduler, fake: FakeDecoder) -> None:
    busy(scheduler, fake)
    futures = [scheduler.submit(job("file", f"f{i}", final=True, batch=True)) for i in range(3)]
    assert scheduler.queue_depth() == 3
    assert not any(f.done() for f in futures)
    fake.release()
    assert fake.run_all(3) == ["f0", "f1", "f2"]
    assert [result(f) for f in futures] == ["f0", "f1", "f2"]


def test_batch_work_yields_to_live_finals_and_takes_turns(
    scheduler: DecodeScheduler, fake: FakeDecoder
) -> None:
    busy(scheduler, fake)
    for i in range(3):
        scheduler.submit(job("file", f"f{i}", final=True, batch=True))
    scheduler.submit(job("a", "a-partial"))
    scheduler.submit(job("b", "b-final", final=True))
    fake.release()
    # the live final first; then one pass per waiting session in turn
    assert fake.run_all(5) == ["b-final", "f0", "a-partial", "f1", "f2"]


# -- batching ------------------------------------------------------------------------------


class FakeBatchDecoder(FakeDecoder):
    """Decodes a whole batch at once (one permit per batch) and records the batches."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[str]] = []

    def decode_batch(self, jobs: list[DecodeJob]) -> list[Hypothesis | BaseException]:
        tags = [j.tag for j in jobs if isinstance(j, TaggedJob)]
        self.started.put("+".join(tags))
        if not self._permits.acquire(timeout=TIMEOUT):
            raise TimeoutError(f"test never released {tags}")
        self.batches.append(tags)
        return [
            RuntimeError(f"decode of {t} failed") if t in self.failing else Hypothesis(text=t)
            for t in tags
        ]


def kind_key(job: DecodeJob) -> object:
    return (job.is_final, job.batch)


@pytest.fixture
def batching() -> Iterator[tuple[DecodeScheduler, FakeBatchDecoder]]:
    fake = FakeBatchDecoder()
    sched = DecodeScheduler(
        fake, decode_batch=fake.decode_batch, batch_key=kind_key, max_batch=3, name="t-batch"
    )
    yield sched, fake
    fake.release(1000)
    sched.close(timeout=TIMEOUT)


def test_finals_batch_together_in_order(
    batching: tuple[DecodeScheduler, FakeBatchDecoder],
) -> None:
    sched, fake = batching
    sched.submit(job("x", "blocker", final=True))
    assert fake.next_started() == "blocker"
    futures = [sched.submit(job(s, f"{s}-final", final=True)) for s in "abcd"]
    partial = sched.submit(job("e", "e-partial"))
    fake.release()
    # max_batch 3: three finals, then the fourth, then the partial (other key)
    assert fake.run_all(3) == ["a-final+b-final+c-final", "d-final", "e-partial"]
    assert [result(f) for f in futures] == ["a-final", "b-final", "c-final", "d-final"]
    assert result(partial) == "e-partial"


def test_partials_of_different_sessions_batch_round_robin(
    batching: tuple[DecodeScheduler, FakeBatchDecoder],
) -> None:
    sched, fake = batching
    sched.submit(job("x", "blocker", final=True))
    assert fake.next_started() == "blocker"
    for s in "abcd":
        sched.submit(job(s, f"{s}1"))
    sched.submit(job("a", "a2"))  # replaces a1 and goes to the back of the line
    fake.release()
    assert fake.run_all(2) == ["b1+c1+d1", "a2"]


def test_one_failed_job_in_a_batch_fails_alone(
    batching: tuple[DecodeScheduler, FakeBatchDecoder],
) -> None:
    sched, fake = batching
    sched.submit(job("x", "blocker", final=True))
    assert fake.next_started() == "blocker"
    fake.failing.add("b-final")
    futures = [sched.submit(job(s, f"{s}-final", final=True)) for s in "abc"]
    fake.release()
    fake.run_all(1)
    assert result(futures[0]) == "a-final"
    with pytest.raises(RuntimeError, match="b-final"):
        futures[1].result(timeout=TIMEOUT)
    assert result(futures[2]) == "c-final"


def test_batches_are_shared_among_workers() -> None:
    fake = FakeBatchDecoder()
    sched = DecodeScheduler(
        fake, decode_batch=fake.decode_batch, batch_key=kind_key, max_batch=8, workers=2
    )
    try:
        for blocker in ("blocker-1", "blocker-2"):  # both workers busy
            sched.submit(job(blocker, blocker, final=True))
            assert fake.next_started() == blocker
        for s in "abcd":
            sched.submit(job(s, f"{s}1"))
        fake.release(2)
        # four partials waiting, two workers: the first free worker takes half, not all
        assert fake.next_started() == "a1+b1"
        fake.release(1000)
        # then the other worker takes half of the two left, and the last goes alone
        assert sorted(fake.next_started() for _ in range(2)) == ["c1", "d1"]
    finally:
        fake.release(1000)
        sched.close(timeout=TIMEOUT)


def test_promote_moves_a_speculative_job_ahead_of_partials(
    scheduler: DecodeScheduler, fake: FakeDecoder
) -> None:
    busy(scheduler, fake)
    scheduler.submit(job("a", "a-partial"))
    speculative = job("b", "b-speculative", speculative=True)
    spec_future = scheduler.submit(speculative)
    scheduler.submit(job("c", "c-partial"))
    scheduler.promote(spec_future)
    fake.release()
    assert fake.run_all(3) == ["b-speculative", "a-partial", "c-partial"]
    assert result(spec_future) == "b-speculative"


def test_speculative_job_is_coalesced_like_a_partial(
    scheduler: DecodeScheduler, fake: FakeDecoder
) -> None:
    busy(scheduler, fake)
    speculative = job("a", "a-speculative", speculative=True)
    spec_future = scheduler.submit(speculative)
    newer = scheduler.submit(job("a", "a-partial"))  # speech resumed: the guess is stale
    assert result(spec_future) is None
    fake.release()
    assert fake.run_all(1) == ["a-partial"]
    assert result(newer) == "a-partial"


def test_a_files_queued_turns_batch_together(
    batching: tuple[DecodeScheduler, FakeBatchDecoder],
) -> None:
    sched, fake = batching
    sched.submit(job("x", "blocker", final=True))
    assert fake.next_started() == "blocker"
    futures = sched.submit_many([job("file", f"f{i}", final=True, batch=True) for i in range(4)])
    fake.release()
    # max_batch 3: one file's turns decode together, in order, up to the batch limit
    assert fake.run_all(2) == ["f0+f1+f2", "f3"]
    assert [result(f) for f in futures] == ["f0", "f1", "f2", "f3"]


def test_a_files_batch_still_takes_turns_with_live_partials(
    batching: tuple[DecodeScheduler, FakeBatchDecoder],
) -> None:
    sched, fake = batching
    sched.submit(job("x", "blocker", final=True))
    assert fake.next_started() == "blocker"
    sched.submit_many([job("file", f"f{i}", final=True, batch=True) for i in range(2)])
    sched.submit(job("a", "a-partial"))
    fake.release()
    # the file's turns batch (same key); the partial has another key and goes next
    assert fake.run_all(2) == ["f0+f1", "a-partial"]
