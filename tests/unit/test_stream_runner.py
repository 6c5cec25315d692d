"""`pulse_stt.api.websocket.StreamRunner` with a stand-in socket: which failures are a
client that went away (no log noise, nothing to close) and which are our own bugs
(logged, answered with 1011)."""

from __future__ import annotations

import asyncio
import logging
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
    socket: FakeSocket, pool: ThreadPoolExecutor, tmp_path: Path
) -> tuple[StreamRunner, ServerMetrics]:
    metrics = ServerMetrics()
    ctx = SimpleNamespace(
        settings=Settings(data_dir=tmp_path),
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
