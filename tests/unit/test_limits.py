"""Limits, admission control and the session outbox, without a server or a model."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import get_args

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulse_stt.api.admission import (
    REFUSAL_REASONS,
    Admission,
    Refusal,
    RefusalReason,
    SessionSlots,
    Slot,
    limit_warnings,
)
from pulse_stt.config import Settings
from pulse_stt.engine.scheduler import DecodeScheduler
from pulse_stt.engine.types import DecodeJob, Hypothesis
from pulse_stt.ops.metrics import ADMISSION_REASONS, KNOWN_ERRORS, ServerMetrics
from pulse_stt.protocol import JobKind
from pulse_stt.stream.outbox import Outbox, OutboxClosedError
from tests.unit.fake_clock import FakeClock

# -- session slots ----------------------------------------------------------------------


def test_slots_count_per_key_and_in_total_and_come_back_on_release() -> None:
    slots = SessionSlots(max_total=3, max_per_key=2)
    a1, a2 = slots.take(1), slots.take(1)
    assert isinstance(a1, Slot) and isinstance(a2, Slot)
    assert slots.take(1) == "key_limit"  # the key's third
    b1 = slots.take(2)
    assert isinstance(b1, Slot)
    assert slots.take(3) == "server_full"  # another key, but the server holds 3
    assert (slots.total, slots.held_by(1), slots.held_by(2)) == (3, 2, 1)
    a1.release()
    a1.release()  # idempotent: a slot is given back once
    assert (slots.total, slots.held_by(1)) == (2, 1)
    with slots.take(3) as c1:  # type: ignore[union-attr]
        assert isinstance(c1, Slot) and slots.total == 3
    assert slots.total == 2 and slots.held_by(3) == 0


def test_key_limit_is_checked_before_the_server_limit() -> None:
    slots = SessionSlots(max_total=2, max_per_key=2)
    slots.take(1), slots.take(1)
    assert slots.take(1) == "key_limit"  # it is the key's own limit that it must fix
    assert slots.take(2) == "server_full"


def test_zero_means_unlimited() -> None:
    slots = SessionSlots(max_total=0, max_per_key=0)
    taken = [slots.take(1) for _ in range(500)]
    assert all(isinstance(s, Slot) for s in taken) and slots.total == 500


# -- admission ---------------------------------------------------------------------------


class FakeLoad:
    def __init__(self, wait: float = 0.0) -> None:
        self.wait = wait
        self.calls = 0

    def oldest_final_wait(self) -> float:
        self.calls += 1
        return self.wait


def admission(
    *, max_total: int = 0, max_per_key: int = 0, max_wait: float = 1.0, retry_after: int = 5
) -> tuple[Admission, list[RefusalReason]]:
    refused: list[RefusalReason] = []
    control = Admission(
        SessionSlots(max_total=max_total, max_per_key=max_per_key),
        max_final_wait_s=max_wait,
        retry_after_s=retry_after,
        on_refusal=refused.append,
    )
    return control, refused


def test_sessions_are_admitted_while_the_engine_keeps_up() -> None:
    control, refused = admission(max_wait=1.0)
    load = FakeLoad(0.99)
    assert isinstance(control.admit(1, load), Slot)
    assert refused == []


def test_an_overloaded_engine_refuses_new_sessions_with_503_and_keeps_no_slot() -> None:
    control, refused = admission(max_wait=1.0, retry_after=5)
    held = control.admit(1, FakeLoad(0.0))
    assert isinstance(held, Slot)
    refusal = control.admit(2, FakeLoad(7.4))
    assert isinstance(refusal, Refusal)
    assert (refusal.reason, refusal.status, refusal.error) == ("overloaded", 503, "overloaded")
    assert "7.4 s" in refusal.message and "admission_max_final_wait_s" in refusal.message
    assert refusal.retry_after_s == 8  # the wait, rounded up, when longer than the setting
    assert control.slots.total == 1  # the admitted session keeps its slot; no new one held
    assert refused == ["overloaded"]
    # the load passes: new sessions are admitted again
    assert isinstance(control.admit(2, FakeLoad(0.2)), Slot)


def test_admission_by_load_can_be_turned_off() -> None:
    control, _ = admission(max_wait=0.0)
    load = FakeLoad(100.0)
    assert isinstance(control.admit(1, load), Slot)
    assert load.calls == 0


def test_limit_refusals_say_what_to_do_and_carry_retry_after() -> None:
    control, refused = admission(max_total=2, max_per_key=1, retry_after=7)
    assert isinstance(control.admit(1, FakeLoad()), Slot)
    key_limit = control.admit(1, FakeLoad())
    assert isinstance(key_limit, Refusal)
    assert (key_limit.status, key_limit.error) == (429, "too_many_sessions")
    assert "max_sessions_per_key" in key_limit.message and "1 sessions" in key_limit.message
    assert isinstance(control.admit(2, FakeLoad()), Slot)
    full = control.admit(3, FakeLoad())
    assert isinstance(full, Refusal)
    assert (full.status, full.error) == (503, "server_full")
    assert "2 sessions" in full.message and "max_sessions" in full.message
    response = full.response()
    assert response.status_code == 503 and response.headers["retry-after"] == "7"
    assert json.loads(response.body) == {
        "status": "error",
        "error": "server_full",
        "message": full.message,
        "retry_after_s": 7,
    }
    assert refused == ["key_limit", "server_full"]


def test_refusal_reasons_are_the_metric_labels_and_errors_are_known() -> None:
    assert REFUSAL_REASONS == ADMISSION_REASONS == get_args(RefusalReason)
    for error in ("too_many_sessions", "server_full", "overloaded", "session_too_long"):
        assert error in KNOWN_ERRORS
    assert "slow_reader" in KNOWN_ERRORS


def test_admission_from_settings_and_its_metrics() -> None:
    metrics = ServerMetrics()
    settings = Settings(
        max_sessions=1, max_sessions_per_key=0, admission_retry_after_s=3, data_dir="/nonexistent"
    )
    control = Admission.from_settings(settings, metrics.admission_refused)
    assert isinstance(control.admit(1, FakeLoad()), Slot)
    refusal = control.admit(1, FakeLoad())
    assert isinstance(refusal, Refusal) and refusal.retry_after_s == 3
    metrics.watch_final_wait("pulse", lambda: 2.5)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics.render()[0].decode())
        for s in family.samples
    }
    refusals = "pulse_stt_admission_refusals_total"
    assert samples[(refusals, (("reason", "server_full"),))] == 1
    assert samples[(refusals, (("reason", "overloaded"),))] == 0  # exported from the start
    assert samples[("pulse_stt_oldest_final_wait_seconds", (("model", "pulse"),))] == 2.5


def test_default_limits_are_what_production_expects() -> None:
    settings = Settings(data_dir="/nonexistent")
    assert settings.max_text_frame_bytes == 64 * 1024 < settings.max_frame_bytes
    assert settings.max_session_s == 4 * 3600
    assert (settings.max_sessions_per_key, settings.max_sessions) == (16, 64)
    assert 0 < settings.token_max_sessions == 4 < settings.max_sessions_per_key
    assert settings.token_session_grace_s == 3600
    assert settings.admission_max_final_wait_s == 1.0
    assert settings.max_send_backlog_bytes == 4 << 20 and settings.send_timeout_s == 30


# -- the scheduler's load signal ------------------------------------------------------------


def test_oldest_final_wait_is_the_age_of_the_oldest_queued_live_final() -> None:
    started, release = threading.Event(), threading.Event()

    def decode(job: DecodeJob) -> Hypothesis:
        started.set()
        release.wait(10)
        return Hypothesis(job.session_id)

    def job(session: str, *, final: bool, speculative: bool = False) -> DecodeJob:
        audio = np.zeros(1600, np.float32)
        kind = JobKind.SPECULATIVE if speculative else JobKind.FINAL if final else JobKind.PARTIAL
        return DecodeJob(session, audio, kind, "en")

    clock = FakeClock()
    sched = DecodeScheduler(decode, workers=1, clock=clock)
    try:
        assert sched.oldest_final_wait() == 0.0
        busy = sched.submit(job("a", final=True))  # the worker takes it and blocks
        assert started.wait(5)
        clock.advance(1.0)
        assert sched.oldest_final_wait() == 0.0  # running, not waiting
        sched.submit(job("b", final=False))  # partials do not count: nobody is owed them
        speculative = sched.submit(job("c", final=True, speculative=True))
        clock.advance(0.15)
        assert sched.oldest_final_wait() == 0.0
        sched.submit(job("d", final=True))
        clock.advance(0.2)
        first = sched.oldest_final_wait()
        assert first == pytest.approx(0.2)
        sched.promote(speculative)  # owed from now on: it waits behind d, d stays the oldest
        clock.advance(0.1)
        assert sched.oldest_final_wait() == pytest.approx(first + 0.1)
        release.set()
        busy.result(5)
        deadline = time.monotonic() + 5
        while sched.queue_depth() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert sched.oldest_final_wait() == 0.0
    finally:
        release.set()
        sched.close()


# -- the outbox ---------------------------------------------------------------------------


def test_outbox_keeps_order_and_counts_bytes_until_written() -> None:
    async def scenario() -> None:
        box: Outbox[str] = Outbox(limit_bytes=100)
        box.put("a", 30)
        box.put("b", 50)
        assert box.backlog_bytes == 80
        assert await box.get() == "a"
        assert box.backlog_bytes == 80  # "a" is being written: still held
        box.done()
        assert box.backlog_bytes == 50
        assert await box.get() == "b"
        box.put("c", 10)
        assert await box.get() == "c"  # get() releases the item taken before it
        assert box.backlog_bytes == 10
        box.done()
        assert box.backlog_bytes == 0

    asyncio.run(scenario())


def test_outbox_room_waits_while_over_the_limit() -> None:
    async def scenario() -> None:
        box: Outbox[str] = Outbox(limit_bytes=100)
        box.put("audio-1", 80)
        assert await asyncio.wait_for(box.room(), 0.1)  # within the limit: no wait
        box.put("audio-2", 80)
        waiting = asyncio.ensure_future(box.room())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # 160 > 100: the reader of frames waits
        await box.get()
        box.done()
        assert await asyncio.wait_for(waiting, 1.0) is True

    asyncio.run(scenario())


class Audio:
    """An item that, like a decode with its numpy audio, refuses to be compared."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __eq__(self, other: object) -> bool:
        raise ValueError("the truth value of an array is ambiguous")

    __hash__ = object.__hash__


def test_items_leave_the_outbox_by_identity_never_by_comparison() -> None:
    async def scenario() -> None:
        box: Outbox[Audio] = Outbox(limit_bytes=10_000)
        final, stale, newer = Audio("final 0"), Audio("partial 1.1"), Audio("partial 1.2")
        box.put(final, 100)
        box.put(stale, 100, partial_of=1)
        box.put(newer, 100, partial_of=1)  # looks for `stale` past `final`
        taken = [await box.get() for _ in range(len(box))]
        assert len(taken) == 2 and taken[0] is final and taken[1] is newer
        assert box.dropped_partials == 1

    asyncio.run(scenario())


def test_a_newer_partial_replaces_a_queued_one_of_its_turn_never_a_final() -> None:
    async def scenario() -> None:
        box: Outbox[str] = Outbox(limit_bytes=10_000)
        box.put("partial 0.1", 100, partial_of=0)
        box.put("speech_ended", 10)
        box.put("partial 0.2", 100, partial_of=0)  # replaces 0.1, keeps its own place
        box.put("final 0", 100)
        box.put("partial 1.1", 100, partial_of=1)
        taken = await box.get()  # being written: cannot be dropped any more
        assert taken == "speech_ended"
        box.put("partial 1.2", 100, partial_of=1)
        box.put("partial 2.1", 100, partial_of=2)  # another turn: nothing to replace
        rest = [await box.get() for _ in range(len(box))]
        assert rest == ["partial 0.2", "final 0", "partial 1.2", "partial 2.1"]
        assert box.dropped_partials == 2

    asyncio.run(scenario())


def test_abandon_frees_everything_and_wakes_both_loops() -> None:
    async def scenario() -> None:
        box: Outbox[str] = Outbox(limit_bytes=100)
        box.put("x", 500)
        box.put("y", 10)
        room = asyncio.ensure_future(box.room())  # the receive loop, waiting for room
        await asyncio.sleep(0.01)
        assert not room.done()
        box.abandon()
        assert await asyncio.wait_for(room, 1.0) is False
        assert box.backlog_bytes == 0 and len(box) == 0
        box.put("after", 10)  # ignored: nothing will be written any more
        assert len(box) == 0

        idle: Outbox[str] = Outbox(limit_bytes=100)
        getter = asyncio.ensure_future(idle.get())  # the send loop, waiting for work
        await asyncio.sleep(0.01)
        idle.abandon()
        with pytest.raises(OutboxClosedError):
            await asyncio.wait_for(getter, 1.0)

    asyncio.run(scenario())


def test_text_frames_are_measured_in_utf8_bytes() -> None:
    from pulse_stt.api.websocket import _utf8_size_over

    assert not _utf8_size_over('{"type":"finalize"}', 64)
    assert _utf8_size_over("x" * 65, 64)
    assert not _utf8_size_over("é" * 32, 64)  # 64 bytes: at the limit
    assert _utf8_size_over("é" * 33, 64)  # 33 characters, 66 bytes


# -- fair shares: no one key or token takes every slot (issue 20 row 2) --------------------


def test_with_the_defaults_one_key_cannot_take_every_slot() -> None:
    """The probe: one key opened sessions until every other key got server_full. With the
    defaults it is refused at its own limit, and a second key still gets in."""
    refused: list[RefusalReason] = []
    control = Admission.from_settings(Settings(data_dir="/nonexistent"), refused.append)
    taken: list[Slot] = []
    while isinstance(slot := control.admit(1, FakeLoad()), Slot):
        taken.append(slot)
        assert len(taken) <= 64
    assert isinstance(slot, Refusal) and slot.reason == "key_limit" and slot.status == 429
    assert len(taken) < control.slots.max_total
    for other_key in (2, 3, 4):
        assert isinstance(control.admit(other_key, FakeLoad()), Slot)


def test_a_token_holds_at_most_its_own_cap_and_its_key_keeps_the_rest() -> None:
    slots = SessionSlots(max_total=64, max_per_key=16, max_per_token=4)
    first = [slots.take(1, "token-a") for _ in range(4)]
    assert all(isinstance(slot, Slot) for slot in first)
    assert slots.take(1, "token-a") == "token_limit"
    assert isinstance(slots.take(1, "token-b"), Slot)  # another page of the same key
    assert isinstance(slots.take(1), Slot)  # the key itself
    assert isinstance(slots.take(2, "token-c"), Slot)
    assert (slots.held_by_token("token-a"), slots.held_by(1), slots.total) == (4, 6, 7)
    assert isinstance(first[0], Slot)
    first[0].release()
    assert slots.held_by_token("token-a") == 3 and slots.held_by(1) == 5
    assert isinstance(slots.take(1, "token-a"), Slot)


def test_a_tokens_sessions_count_against_its_key_too() -> None:
    slots = SessionSlots(max_total=64, max_per_key=3, max_per_token=4)
    for token in ("a", "b", "c"):
        assert isinstance(slots.take(1, token), Slot)
    assert slots.take(1, "d") == "key_limit"


def test_a_token_over_its_cap_is_told_so_and_counted() -> None:
    refused: list[RefusalReason] = []
    control = Admission(
        SessionSlots(max_total=10, max_per_key=10, max_per_token=1),
        max_final_wait_s=1.0,
        retry_after_s=5,
        on_refusal=refused.append,
    )
    assert isinstance(control.admit(1, FakeLoad(), token="t"), Slot)
    refusal = control.admit(1, FakeLoad(), token="t")
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.error) == (429, "too_many_sessions")
    assert "token_max_sessions" in refusal.message and "1 sessions" in refusal.message
    assert refused == ["token_limit"]


def test_limits_that_never_apply_are_reported_at_startup(caplog: pytest.LogCaptureFixture) -> None:
    assert limit_warnings(Settings(data_dir="/nonexistent")) == []
    over = Settings(data_dir="/nonexistent", max_sessions=64, max_sessions_per_key=100)
    (warning,) = limit_warnings(over)
    assert "max_sessions_per_key is 100" in warning and "max_sessions (64)" in warning
    unlimited = Settings(data_dir="/nonexistent", max_sessions_per_key=0, token_max_sessions=0)
    assert len(limit_warnings(unlimited)) == 2
    assert limit_warnings(Settings(data_dir="/nonexistent", max_sessions=0)) == []
    with caplog.at_level("WARNING", logger="pulse_stt.api.admission"):
        Admission.from_settings(over, lambda _reason: None)
    assert any("max_sessions_per_key is 100" in r.getMessage() for r in caplog.records)


def test_a_token_session_ends_a_bounded_time_after_the_token_expires() -> None:
    from datetime import UTC, datetime, timedelta

    from pulse_stt.api.websocket import session_limit_s
    from pulse_stt.store.db import ApiKey

    now = datetime.now(UTC)
    key = ApiKey(1, "k", "hint", now, None)
    token = ApiKey(
        1, "k", "hint", now, None, token_id="d", token_expires_at=now + timedelta(seconds=60)
    )
    settings = Settings(data_dir="/nonexistent", token_session_grace_s=0)
    assert session_limit_s(settings, key) == settings.max_session_s
    assert 55 < session_limit_s(settings, token) <= 60
    graced = Settings(data_dir="/nonexistent", token_session_grace_s=600)
    assert 655 < session_limit_s(graced, token) <= 660
    short = Settings(data_dir="/nonexistent", token_session_grace_s=600, max_session_s=30)
    assert session_limit_s(short, token) == 30
