"""`DecodeScheduler` under engine faults: a raising pass fails only its own jobs, a dead
worker thread is replaced, and no future is ever left waiting."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from pulse_stt.engine.scheduler import DecodeScheduler
from pulse_stt.engine.types import DecodeJob, Hypothesis
from tests.unit.test_scheduler import TIMEOUT, TaggedJob, job, kind_key, result


class WorkerKilled(BaseException):
    """Not an Exception: what a decode pass raises when something tears its thread down."""


class FaultyModel:
    """A fake model whose batch pass raises when any job in it is poisoned (as a real model
    pass does: one exception for the whole pass) and whose single pass fails only the
    poisoned job. Passes wait for the test's permit, so batches form while one runs."""

    def __init__(self) -> None:
        self.poisoned: set[str] = set()
        self.kill: set[str] = set()  # raise WorkerKilled instead
        self.batches: list[list[str]] = []
        self.singles: list[str] = []
        self.threads: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.started = threading.Semaphore(0)

    def _enter(self) -> None:
        self.threads.add(threading.current_thread().name)
        self.started.release()
        assert self.gate.wait(TIMEOUT)

    def decode(self, job: DecodeJob) -> Hypothesis:
        assert isinstance(job, TaggedJob)
        self._enter()
        self.singles.append(job.tag)
        if job.tag in self.kill:
            raise WorkerKilled(job.tag)
        if job.tag in self.poisoned:
            raise RuntimeError(f"model pass failed on {job.tag}")
        return Hypothesis(job.tag)

    def decode_batch(self, jobs: list[DecodeJob]) -> list[Hypothesis | BaseException]:
        tags = [j.tag for j in jobs if isinstance(j, TaggedJob)]
        self._enter()
        self.batches.append(tags)
        if self.kill & set(tags):
            raise WorkerKilled(tags)
        if self.poisoned & set(tags):
            raise RuntimeError(f"model pass failed on {tags}")
        return [Hypothesis(t) for t in tags]


@pytest.fixture
def model() -> FaultyModel:
    return FaultyModel()


@pytest.fixture
def scheduler(model: FaultyModel) -> Iterator[DecodeScheduler]:
    sched = DecodeScheduler(
        model.decode,
        decode_batch=model.decode_batch,
        batch_key=kind_key,
        max_batch=4,
        name="t-faults",
    )
    yield sched
    model.gate.set()
    sched.close(timeout=TIMEOUT)


def hold_worker(sched: DecodeScheduler, model: FaultyModel) -> None:
    """Keep the single worker in a pass so that the next jobs queue up and batch together."""
    model.gate.clear()
    sched.submit(job("blocker", "blocker", final=True))
    assert model.started.acquire(timeout=TIMEOUT)


def test_a_raising_batch_pass_fails_only_the_job_that_caused_it(
    scheduler: DecodeScheduler, model: FaultyModel
) -> None:
    model.poisoned.add("b-final")
    hold_worker(scheduler, model)
    futures = [scheduler.submit(job(s, f"{s}-final", final=True)) for s in "abc"]
    model.gate.set()
    assert result(futures[0]) == "a-final"
    with pytest.raises(RuntimeError, match="b-final"):
        futures[1].result(timeout=TIMEOUT)
    assert result(futures[2]) == "c-final"
    # one batch pass with all three raised; each was then decoded on its own
    assert ["a-final", "b-final", "c-final"] in model.batches
    assert model.singles == ["a-final", "b-final", "c-final"]
    assert scheduler.running and scheduler.worker_restarts == 0


def test_a_dead_worker_fails_its_batch_and_is_replaced(
    scheduler: DecodeScheduler, model: FaultyModel, caplog: pytest.LogCaptureFixture
) -> None:
    model.kill.add("doomed")
    doomed = scheduler.submit(job("a", "doomed", final=True))
    with pytest.raises(RuntimeError, match="decode worker failed"):
        doomed.result(timeout=TIMEOUT)
    # the pool is whole again and decodes the next job
    later = scheduler.submit(job("b", "later", final=True))
    assert result(later) == "later"
    assert scheduler.worker_restarts == 1
    assert scheduler.running
    assert "decode worker t-faults-0 replaced" in caplog.text


def test_co_batched_jobs_of_a_dying_worker_are_failed_not_left_waiting(
    scheduler: DecodeScheduler, model: FaultyModel
) -> None:
    model.kill.add("b-final")
    hold_worker(scheduler, model)
    futures = [scheduler.submit(job(s, f"{s}-final", final=True)) for s in "abc"]
    model.gate.set()
    for future in futures:  # a worker that dies cannot tell which job it was
        assert isinstance(future.exception(timeout=TIMEOUT), RuntimeError)
    assert result(scheduler.submit(job("d", "d-final", final=True))) == "d-final"
    assert scheduler.worker_restarts == 1


def test_a_failing_batch_key_decodes_without_batching(model: FaultyModel) -> None:
    def broken_key(job: DecodeJob) -> object:
        raise KeyError("no key")

    sched = DecodeScheduler(
        model.decode, decode_batch=model.decode_batch, batch_key=broken_key, max_batch=4
    )
    try:
        hold_worker(sched, model)
        futures = [sched.submit(job(s, f"{s}-final", final=True)) for s in "ab"]
        model.gate.set()
        assert [result(f) for f in futures] == ["a-final", "b-final"]
        assert sched.worker_restarts == 0
    finally:
        sched.close(timeout=TIMEOUT)


def test_a_batch_with_the_wrong_number_of_results_is_decoded_one_by_one(
    model: FaultyModel,
) -> None:
    def short_batch(jobs: list[DecodeJob]) -> list[Hypothesis | BaseException]:
        return model.decode_batch(jobs)[:-1]

    sched = DecodeScheduler(model.decode, decode_batch=short_batch, batch_key=kind_key)
    try:
        hold_worker(sched, model)
        futures = [sched.submit(job(s, f"{s}-final", final=True)) for s in "ab"]
        model.gate.set()
        assert [result(f) for f in futures] == ["a-final", "b-final"]
    finally:
        sched.close(timeout=TIMEOUT)


def test_workers_are_not_replaced_once_closed(model: FaultyModel) -> None:
    sched = DecodeScheduler(model.decode, workers=2, name="t-closing")
    sched.close(timeout=TIMEOUT)
    assert not sched.running
    assert sched.worker_restarts == 0
    assert not [t for t in threading.enumerate() if t.name.startswith("t-closing")]
