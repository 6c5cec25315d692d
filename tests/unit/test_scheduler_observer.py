"""What `DecodeScheduler` tells an observer (metrics): pass reports, queue depths, liveness."""

from __future__ import annotations

import queue
from dataclasses import replace

import pytest

from pulse_stt.engine.scheduler import (
    DecodeScheduler,
    PassReport,
    QueueDepth,
    pass_kind,
)
from pulse_stt.protocol import JobKind
from tests.unit.fake_clock import FakeClock
from tests.unit.test_scheduler import (
    TIMEOUT,
    FakeBatchDecoder,
    FakeDecoder,
    busy,
    job,
    kind_key,
    result,
)


class Reports:
    """An observer that collects what it is told, from the worker thread."""

    def __init__(self) -> None:
        self.received: queue.Queue[PassReport] = queue.Queue()

    def __call__(self, report: PassReport) -> None:
        self.received.put(report)

    def next(self) -> PassReport:
        return self.received.get(timeout=TIMEOUT)


def test_pass_kind_names_live_final_partial_and_file_work() -> None:
    assert pass_kind(job("a", "p")) == "partial"
    assert pass_kind(job("a", "f", final=True)) == "final"
    assert pass_kind(job("a", "b", final=True, batch=True)) == "file"
    # a final-quality pass: decoded exactly as a final
    speculative = replace(job("a", "s", final=True), kind=JobKind.SPECULATIVE)
    assert pass_kind(speculative) == "final"


def test_every_batch_is_reported_with_its_kind_size_and_duration() -> None:
    fake, reports = FakeBatchDecoder(), Reports()
    sched = DecodeScheduler(
        fake,
        decode_batch=fake.decode_batch,
        batch_key=kind_key,
        max_batch=3,
        observer=reports,
        name="t-observe",
    )
    try:
        blocker = sched.submit(job("x", "blocker", final=True))
        assert fake.next_started() == "blocker"
        finals = [sched.submit(job(s, f"{s}-final", final=True)) for s in "abc"]
        partial = sched.submit(job("d", "d-partial"))
        fake.release()  # the blocker, alone
        first = reports.next()
        assert (first.kind, first.batch_size, first.failed) == ("final", 1, False)
        assert fake.next_started() == "a-final+b-final+c-final"
        fake.release()
        batch = reports.next()
        assert (batch.kind, batch.batch_size, batch.failed) == ("final", 3, False)
        assert fake.next_started() == "d-partial"
        fake.release()
        assert (reports.next().kind, result(partial)) == ("partial", "d-partial")
        assert [result(f) for f in (blocker, *finals)] == [
            "blocker",
            "a-final",
            "b-final",
            "c-final",
        ]
        assert all(r.seconds >= 0 for r in (first, batch))
    finally:
        fake.release(100)
        sched.close(timeout=TIMEOUT)


def test_a_failed_pass_is_reported_failed_and_timed() -> None:
    fake, reports, clock = FakeDecoder(), Reports(), FakeClock()
    sched = DecodeScheduler(fake, observer=reports, name="t-fail", clock=clock)
    try:
        fake.failing.add("bad")
        future = sched.submit(job("a", "bad", final=True))
        assert fake.next_started() == "bad"
        clock.advance(0.05)
        fake.release()
        with pytest.raises(RuntimeError):
            future.result(timeout=TIMEOUT)
        report = reports.next()
        assert report.failed and report.kind == "final" and report.batch_size == 1
        assert report.seconds >= 0.04  # the pass waited for the test's release
    finally:
        fake.release(100)
        sched.close(timeout=TIMEOUT)


def test_an_observer_that_raises_never_breaks_decoding(caplog: pytest.LogCaptureFixture) -> None:
    fake = FakeDecoder()

    def broken(report: PassReport) -> None:
        raise ValueError("observer bug")

    sched = DecodeScheduler(fake, observer=broken, name="t-broken")
    try:
        futures = [sched.submit(job("a", "a1", final=True)), sched.submit(job("b", "b1"))]
        assert fake.run_all(2) == ["a1", "b1"]
        assert [result(f) for f in futures] == ["a1", "b1"]
        assert "pass observer failed" in caplog.text
    finally:
        fake.release(100)
        sched.close(timeout=TIMEOUT)


def test_queue_depths_count_finals_and_background_apart() -> None:
    fake = FakeDecoder()
    sched = DecodeScheduler(fake, name="t-depth")
    try:
        assert sched.queue_depths() == QueueDepth(0, 0)
        busy(sched, fake)  # the running job is not queued
        assert sched.queue_depths() == QueueDepth(0, 0)
        sched.submit(job("a", "a-partial"))
        sched.submit(job("b", "b-partial"))
        sched.submit(job("c", "c-final", final=True))
        sched.submit(job("f", "f0", final=True, batch=True))
        sched.submit(job("f", "f1", final=True, batch=True))
        assert sched.queue_depths() == QueueDepth(finals=1, background=4)
        sched.submit(job("a", "a-partial-2"))  # replaces a's queued partial
        assert sched.queue_depths() == QueueDepth(finals=1, background=4)
        assert sched.queue_depth() == 5
        fake.release()  # the blocker
        fake.run_all(5)
        assert sched.queue_depths() == QueueDepth(0, 0)
    finally:
        fake.release(100)
        sched.close(timeout=TIMEOUT)


def test_running_until_closed() -> None:
    fake = FakeDecoder()
    sched = DecodeScheduler(fake, workers=2, name="t-running")
    assert sched.running
    sched.close(timeout=TIMEOUT)
    assert not sched.running
