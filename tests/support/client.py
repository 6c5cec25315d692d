"""A minimal Pulse WebSocket client for tests: play a script of frames, collect every message."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import websockets

from tests.support.server import Server

LIVE = "/waves/v1/stt/live"
LEGACY = "/waves/v1/pulse/get_text"


@dataclass
class Pace:
    """Send audio at `speed` × real time (None: as fast as possible)."""

    bytes_per_second: int
    speed: float | None = 1.0


@dataclass
class Received:
    messages: list[dict[str, Any]] = field(default_factory=list)
    arrival: list[float] = field(default_factory=list)  # seconds since connect
    close_code: int | None = None

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("type") == kind]

    @property
    def finals(self) -> list[dict[str, Any]]:
        return [m for m in self.of_type("transcription") if m["is_final"]]

    @property
    def partials(self) -> list[dict[str, Any]]:
        return [m for m in self.of_type("transcription") if not m["is_final"]]

    @property
    def final_text(self) -> str:
        return " ".join(m["transcript"] for m in self.finals if m["transcript"])


Step = bytes | dict[str, Any] | str | float  # audio | JSON control | raw text | sleep seconds


def chunks(pcm: bytes, size: int = 3200) -> list[bytes]:
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


async def send_steps(
    ws: websockets.ClientConnection, steps: Sequence[Step], pace: Pace | None = None
) -> None:
    """Play `steps` on an open connection: audio (at `pace`), control JSON, text, sleeps."""
    start = time.monotonic()
    sent = 0
    for step in steps:
        if isinstance(step, bytes):
            await ws.send(step)
            sent += len(step)
            if pace and pace.speed:
                ahead = sent / pace.bytes_per_second / pace.speed - (time.monotonic() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        elif isinstance(step, dict):
            await ws.send(json.dumps(step))
        elif isinstance(step, str):
            await ws.send(step)
        else:
            await asyncio.sleep(step)


async def run_script(
    server: Server,
    query: str,
    steps: Sequence[Step],
    *,
    path: str = LIVE,
    pace: Pace | None = None,
    timeout: float = 180.0,
    headers: dict[str, str] | None = None,
) -> Received:
    """Connect, play `steps`, and read until the server closes the socket."""
    url = f"{server.ws}{path}?{query}"
    got = Received()
    async with websockets.connect(
        url, additional_headers=headers or server.headers(), max_size=None
    ) as ws:
        t0 = time.monotonic()

        async def receive() -> None:
            try:
                async for raw in ws:
                    got.messages.append(json.loads(raw))
                    got.arrival.append(time.monotonic() - t0)
            except websockets.ConnectionClosed:
                pass

        sender = asyncio.create_task(send_steps(ws, steps, pace))
        await asyncio.wait_for(receive(), timeout)
        await sender
        got.close_code = ws.close_code
    return got


def play(server: Server, query: str, steps: Sequence[Step], **kwargs: Any) -> Received:
    return asyncio.run(run_script(server, query, steps, **kwargs))
