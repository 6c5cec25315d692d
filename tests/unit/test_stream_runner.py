"""`pulse_stt.api.websocket.StreamRunner` with a stand-in socket: which failures are a
client that went away (no log noise, nothing to close) and which are our own bugs
(logged, answered with 1011)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from pulse_stt.api.params import parse_stream_params
from pulse_stt.api.websocket import StreamRunner
from pulse_stt.config import Settings
from pulse_stt.ops.metrics import ServerMetrics
from pulse_stt.store.db import ApiKey
from pulse_stt.store.outage import StoreGuard, UsageRecorder


class FakeSocket:
    """Hands out `frames` (then waits forever); records what the runner sends and closes."""

    def __init__(self, frames: list[dict[str, Any] | BaseException]) -> None:
        self.frames = list(frames)
        self.sent: list[str] = []
        self.closed_with: list[int] = []

    async def receive(self) -> dict[str, Any]:
        if not self.frames:
            await asyncio.Event().wait()
        frame = self.frames.pop(0)
        if isinstance(frame, BaseException):
            raise frame
        return frame

    async def send_text(self, text: str) -> None:
        self.sent.append(text)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closed_with.append(code)


class FakeEngine:
    def cancel_session(self, session_id: str) -> None:
        pass


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as executor:
        yield executor


def run_session(
    socket: FakeSocket, pool: ThreadPoolExecutor, tmp_path: Path, **settings: Any
) -> tuple[StreamRunner, ServerMetrics]:
    metrics = ServerMetrics()
    ctx = SimpleNamespace(
        settings=Settings(data_dir=tmp_path, **settings),
        metrics=metrics,
        engine=FakeEngine(),
        dsp_pool=pool,
        speaker_pool=pool,
        itn=None,
        speaker_encoder=None,
        drain=SimpleNamespace(add=lambda runner: None, discard=lambda runner: None),
        store=SimpleNamespace(record_usage=lambda **usage: None),
    )
    ctx.usage = UsageRecorder(StoreGuard(ctx.store, timeout_s=1.0))  # type: ignore[arg-type]
    params = parse_stream_params(
        {"model": "pulse", "language": "en", "encoding": "linear16"}, legacy_path=False
    )
    key = ApiKey(1, "test", "pstt_abc", datetime.now(UTC), None)
    runner = StreamRunner(ctx, socket, params, key, "/waves/v1/stt/live")  # type: ignore[arg-type]
    asyncio.run(asyncio.wait_for(runner.run(), 10))
    return runner, metrics


def internal_errors(metrics: ServerMetrics) -> float:
    value = metrics.registry.get_sample_value("pulse_stt_errors_total", {"kind": "internal"})
    return value or 0.0


def test_a_runtime_error_of_our_own_is_logged_and_closes_with_1011(
    pool: ThreadPoolExecutor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pulse_stt")
    socket = FakeSocket([{"type": "websocket.receive", "bytes": bytes(640)}])

    def broken_feed(data: bytes) -> list[object]:
        raise RuntimeError("a bug in the session")

    original = StreamRunner.__init__

    def patched(self: StreamRunner, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.live.session.feed = broken_feed  # type: ignore[method-assign]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(StreamRunner, "__init__", patched)
        _, metrics = run_session(socket, pool, tmp_path)
    assert socket.closed_with == [1011]
    failed = [r for r in caplog.records if r.getMessage() == "session failed"]
    assert len(failed) == 1 and failed[0].levelno == logging.ERROR
    assert failed[0].exc_info is not None and "a bug in the session" in str(failed[0].exc_info[1])
    assert internal_errors(metrics) == 1
    ended = next(r for r in caplog.records if r.getMessage() == "session ended")
    assert (ended.close_code, ended.close_reason) == (1011, "server_error")


def test_a_socket_that_is_gone_ends_the_session_quietly(
    pool: ThreadPoolExecutor, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What Starlette raises for a receive after the client's disconnect.
    gone = RuntimeError('Cannot call "receive" once a disconnect message has been received.')
    socket = FakeSocket([{"type": "websocket.receive", "bytes": bytes(640)}, gone])
    caplog.set_level(logging.INFO, logger="pulse_stt")
    _, metrics = run_session(socket, pool, tmp_path)
    assert socket.closed_with == []
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert internal_errors(metrics) == 0
    ended = next(r for r in caplog.records if r.getMessage() == "session ended")
    assert ended.close_reason == "client_disconnected"


def test_close_stream_sends_the_last_final_then_closes_with_1000(
    pool: ThreadPoolExecutor, tmp_path: Path
) -> None:
    socket = FakeSocket([{"type": "websocket.receive", "text": '{"type":"close_stream"}'}])
    run_session(socket, pool, tmp_path)
    assert len(socket.sent) == 1 and '"is_last":true' in socket.sent[0]
    assert socket.closed_with == [1000]


def test_a_flood_of_tiny_frames_is_read_at_the_frame_rate_limit(
    pool: ThreadPoolExecutor, tmp_path: Path
) -> None:
    """Issue 20 row 10: 1-byte frames as fast as possible took a core. Each frame costs a
    fixed share of max_frames_per_s: 300 frames at 100 a second (a second's worth at once)
    take at least 2 s to be read; every byte still arrives."""
    frames: list[dict[str, Any] | BaseException] = [
        {"type": "websocket.receive", "bytes": b"\0"} for _ in range(300)
    ]
    frames.append({"type": "websocket.receive", "text": '{"type":"close_stream"}'})
    socket = FakeSocket(frames)
    started = time.monotonic()
    runner, _ = run_session(socket, pool, tmp_path, max_frames_per_s=100)
    assert time.monotonic() - started >= 1.9
    assert runner.live.audio_seconds == pytest.approx(150 / 16000)  # 300 bytes of linear16
    assert socket.closed_with == [1000]


def test_frames_within_the_rate_are_read_at_once(pool: ThreadPoolExecutor, tmp_path: Path) -> None:
    frames: list[dict[str, Any] | BaseException] = [
        {"type": "websocket.receive", "bytes": bytes(640)} for _ in range(150)
    ]
    frames.append({"type": "websocket.receive", "text": '{"type":"close_stream"}'})
    started = time.monotonic()
    run_session(FakeSocket(frames), pool, tmp_path, max_frames_per_s=200)
    assert time.monotonic() - started < 1.5  # within the burst: no waiting


def test_the_frame_pacer_holds_a_second_of_frames_then_spaces_them() -> None:
    from pulse_stt.api.admission import FramePacer

    now = [0.0]
    pacer = FramePacer(200, lambda: now[0])
    assert [pacer.charge() for _ in range(200)] == [0.0] * 200
    assert pacer.charge() == pytest.approx(1 / 200)
    now[0] += 1 / 200  # the caller waited
    assert pacer.charge() == pytest.approx(1 / 200)  # sustained: one frame per 5 ms
    now[0] += 10.0  # idle: the bucket refills to a second's worth, no more
    assert [pacer.charge() for _ in range(200)] == [0.0] * 200
    assert pacer.charge() > 0
    assert FramePacer(0, lambda: now[0]).charge() == 0.0  # 0: no limit
