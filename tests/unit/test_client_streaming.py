"""Client streams against a scripted fake server (a real websockets server on loopback), for
what the real server will not do on demand: drop mid-stream, send junk, answer out of turn.
The real server is exercised in tests/e2e/test_client.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest
from websockets.asyncio.server import ServerConnection, serve

from pulse_stt.client import (
    AsyncPulseClient,
    PulseConnectionError,
    ServerError,
    Transcription,
)

Handler = Callable[[ServerConnection], Awaitable[None]]


def _transcription(text: str, **flags: bool) -> str:
    return json.dumps(
        {
            "type": "transcription",
            "session_id": "fake",
            "transcript": text,
            "is_final": flags.get("is_final", True),
            "is_last": flags.get("is_last", False),
            "from_finalize": flags.get("from_finalize", False),
        }
    )


@asynccontextmanager
async def fake_server(handler: Handler) -> AsyncIterator[AsyncPulseClient]:
    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        yield AsyncPulseClient(f"http://127.0.0.1:{port}", "key")


async def _answer_controls(ws: ServerConnection) -> None:
    """Counts audio; answers finalize with 'turn N' and close_stream with is_last."""
    turns = 0
    async for frame in ws:
        if isinstance(frame, bytes):
            continue
        kind = json.loads(frame)["type"]
        if kind == "finalize":
            turns += 1
            await ws.send(_transcription(f"turn {turns}", from_finalize=True))
        elif kind == "close_stream":
            await ws.send(_transcription("", is_last=True))
            return


def test_finalize_returns_its_own_final_and_close_returns_is_last() -> None:
    async def scenario() -> None:
        async with fake_server(_answer_controls) as client, client.connect() as stream:
            await stream.send(b"\x00\x00" * 160)
            first, second = await asyncio.gather(stream.finalize(), stream.finalize())
            assert (first.transcript, second.transcript) == ("turn 1", "turn 2")  # type: ignore[union-attr]
            last = await stream.close()
            assert last is not None and last.is_last
            seen = [m async for m in stream]  # everything stays available to iteration
            assert [m.transcript for m in seen if isinstance(m, Transcription)] == [
                "turn 1",
                "turn 2",
                "",
            ]
            assert stream.closed and stream.session_id == "fake"

    asyncio.run(scenario())


def test_a_connection_dropped_before_is_last_is_an_error() -> None:
    async def drop(ws: ServerConnection) -> None:
        await ws.send(_transcription("half a sen", is_final=False))
        await ws.close(code=1011, reason="internal error")

    async def scenario() -> None:
        async with fake_server(drop) as client:
            received: list[object] = []

            async def read_all() -> None:
                async for message in client.stream([b"\x00\x00" * 160]):
                    received.append(message)

            with pytest.raises(PulseConnectionError, match="1011"):
                await read_all()
            assert [type(m) for m in received] == [Transcription]
            assert isinstance(received[0], Transcription)
            assert received[0].transcript == "half a sen"

    asyncio.run(scenario())


def test_a_failing_audio_source_ends_the_stream_with_its_error() -> None:
    async def frames() -> AsyncIterator[bytes]:
        yield b"\x00\x00" * 160
        raise RuntimeError("microphone unplugged")

    async def scenario() -> None:
        async with fake_server(_answer_controls) as client:
            with pytest.raises(RuntimeError, match="unplugged"):
                async for _ in client.stream(frames()):
                    pass

    asyncio.run(scenario())


def test_junk_from_the_server_becomes_an_error_message_and_the_stream_goes_on() -> None:
    async def junk_then_normal(ws: ServerConnection) -> None:
        await ws.send("this is not json")
        await _answer_controls(ws)

    async def scenario() -> None:
        async with fake_server(junk_then_normal) as client:
            messages = [m async for m in client.stream(b"\x00\x00" * 5000)]
        assert isinstance(messages[0], ServerError) and "not JSON" in messages[0].message
        assert isinstance(messages[-1], Transcription) and messages[-1].is_last

    asyncio.run(scenario())


def test_audio_of_a_blocking_iterable_is_pulled_off_the_event_loop() -> None:
    import threading

    loop_thread: list[int] = []
    pulled_on: list[int] = []

    def blocking_frames() -> object:
        for _ in range(3):
            pulled_on.append(threading.get_ident())
            yield b"\x00\x00" * 160

    async def count_audio(ws: ServerConnection) -> None:
        await _answer_controls(ws)

    async def scenario() -> None:
        loop_thread.append(threading.get_ident())
        async with fake_server(count_audio) as client:
            messages = [m async for m in client.stream(iter(blocking_frames()))]  # type: ignore[call-overload]
        assert messages[-1].is_last  # type: ignore[union-attr]

    asyncio.run(scenario())
    assert len(pulled_on) == 3 and loop_thread[0] not in pulled_on
