"""The asyncio client: streaming sessions over the WebSocket, and whole files by REST.

```python
async with AsyncPulseClient("http://127.0.0.1:8000", api_key) as client:
    async for message in client.stream(file_frames("call.wav"), StreamOptions(language="en")):
        if isinstance(message, Transcription) and message.is_final:
            print(message.transcript)
```

One background task per stream reads the socket and queues typed messages, so sending,
`finalize()`, `close()` and `async for message in stream` can be used from different
tasks at once (websockets allows only one reader).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from os import PathLike
from types import TracebackType
from typing import BinaryIO, cast

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from pulse_stt.client.endpoints import Endpoints, public_url, resolve_api_key
from pulse_stt.client.errors import PulseConnectionError, PulseError, error_from_response
from pulse_stt.client.messages import (
    BrowserToken,
    FileResult,
    Message,
    ServerError,
    Transcription,
    parse_message,
)
from pulse_stt.client.options import FileOptions, StreamOptions
from pulse_stt.client.rest import ProgressCallback, post_file, post_token, post_url

AudioSource = AsyncIterable[bytes] | Iterable[bytes] | bytes
_BYTES_CHUNK = 4096  # frame size when a whole bytes buffer is given as the source
TOKENS_PATH = "/v1/tokens"


class _End:
    """Queue sentinel: the stream is over (`error` set when it ended badly)."""

    def __init__(self, error: BaseException | None) -> None:
        self.error = error


class AsyncStream:
    """One streaming session. Use as `async with client.connect(options) as stream:`.

    `send(audio)` streams bytes in the declared encoding; `finalize()` ends the current turn
    (one final with `from_finalize=True`, the session stays open); `close()` sends
    `close_stream`, waits for the `is_last` message and returns it. `async for message in
    stream` yields every message (typed) until the server closes the session.

    Leaving the `async with` block normally closes the session gracefully (as `close()`);
    leaving it with an exception drops the connection at once.
    """

    def __init__(self, url: str, headers: dict[str, str], *, open_timeout: float = 10) -> None:
        self.url = url
        self._headers = headers
        self._open_timeout = open_timeout
        self._ws: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._queue: asyncio.Queue[Message | _End] = asyncio.Queue()
        self._finalize_waiters: deque[asyncio.Future[Transcription]] = deque()
        self._last: asyncio.Future[Transcription] | None = None
        self._close_sent = False
        self._ended = False
        self._aborted = False
        self.session_id: str | None = None

    # --- lifecycle -------------------------------------------------------------------

    async def open(self) -> AsyncStream:
        """Connect; raises AuthenticationError (401), ParameterError (400) or
        PulseConnectionError (unreachable)."""
        if self._ws is not None:
            return self
        try:
            self._ws = await connect(
                self.url,
                additional_headers=self._headers,
                max_size=None,
                open_timeout=self._open_timeout,
            )
        except InvalidStatus as exc:
            response = exc.response
            raise error_from_response(
                response.status_code, bytes(response.body or b""), url=public_url(self.url)
            ) from None
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            raise PulseConnectionError(
                f"could not connect to {public_url(self.url)}: {_reason(exc)}"
            ) from exc
        self._last = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read(self._ws), name="pulse-stream-reader")
        return self

    async def __aenter__(self) -> AsyncStream:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.close()
        else:
            await self.abort()

    @property
    def closed(self) -> bool:
        """True once the server has ended the session (or the connection dropped)."""
        return self._ended

    def _connection(self) -> ClientConnection:
        if self._ws is None:
            raise PulseError("the stream is not open; use `async with client.connect(...)`.")
        return self._ws

    # --- sending ---------------------------------------------------------------------

    async def send(self, audio: bytes) -> None:
        """Send one frame of audio in the declared encoding (any size up to 1 MiB)."""
        if not isinstance(audio, bytes | bytearray | memoryview):
            raise TypeError(f"send() takes audio bytes, got {type(audio).__name__}")
        if self._close_sent:
            raise PulseError("close() was called; no more audio can be sent on this stream.")
        await self._send(bytes(audio))

    async def _send(self, data: bytes | str) -> None:
        try:
            await self._connection().send(data)
        except websockets.ConnectionClosed as exc:
            raise PulseConnectionError(f"the connection is closed ({_close_reason(exc)})") from exc

    async def end_audio(self) -> None:
        """No more audio: send `close_stream` without waiting. The remaining finals and
        the `is_last` message still arrive through `async for` / `receive()`."""
        if self._close_sent or self._ended:
            return
        self._close_sent = True
        with contextlib.suppress(PulseConnectionError):  # the reader reports how it ended
            await self._send(json.dumps({"type": "close_stream"}))

    async def finalize(
        self, *, wait: bool = True, timeout: float | None = 60
    ) -> Transcription | None:
        """End the current turn: the server answers with exactly one final
        (`from_finalize=True`, possibly empty) and keeps the session open.

        With `wait` (default) returns that final; it is also yielded by `async for`.
        """
        waiter: asyncio.Future[Transcription] | None = None
        if wait:
            waiter = asyncio.get_running_loop().create_future()
            self._finalize_waiters.append(waiter)
        try:
            await self._send(json.dumps({"type": "finalize"}))
        except PulseConnectionError:
            if waiter is not None:
                self._finalize_waiters.remove(waiter)
            raise
        if waiter is None:
            return None
        return await asyncio.wait_for(asyncio.shield(waiter), timeout)

    async def close(self, *, timeout: float | None = 120) -> Transcription | None:
        """Send `close_stream`, wait for the terminal `is_last` message and return it.

        The server flushes the audio it holds first, so every final arrives before this
        returns (and stays available to `async for`). Raises PulseConnectionError when
        the connection ended without it.
        """
        if self._ws is None or self._last is None or self._aborted:
            return None
        await self.end_audio()
        try:
            last = await asyncio.wait_for(asyncio.shield(self._last), timeout)
        except TimeoutError:
            await self.abort()
            raise PulseConnectionError(
                f"no is_last message within {timeout} s of close_stream; connection dropped."
            ) from None
        await self._finish()
        return last

    async def abort(self) -> None:
        """Drop the connection now, without waiting for outstanding finals."""
        self._aborted = True
        if self._ws is not None:
            await self._ws.close()
        await self._finish()

    async def _finish(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader

    # --- receiving -------------------------------------------------------------------

    async def _read(self, ws: ClientConnection) -> None:
        error: PulseError | None = None
        saw_last = False
        try:
            async for frame in ws:
                try:
                    message = parse_message(frame)
                except ValueError as exc:
                    message = ServerError(str(exc), error="unparsable_message")
                self._dispatch(message)
                if isinstance(message, Transcription) and message.is_last:
                    saw_last = True
        except websockets.ConnectionClosedError as exc:
            if not saw_last:
                error = PulseConnectionError(
                    f"the server closed the stream before its last message ({_close_reason(exc)})"
                )
        finally:
            self._ended = True
            if not saw_last and error is None:
                error = PulseConnectionError(
                    f"the server closed the stream without a last message "
                    f"({_close_reason_code(ws)})"
                )
            self._settle(error)
            self._queue.put_nowait(_End(error))

    def _dispatch(self, message: Message) -> None:
        if self.session_id is None:
            self.session_id = getattr(message, "session_id", None)
        if isinstance(message, Transcription) and message.is_final:
            # A server that does not mark finals `from_finalize` answers with its next final.
            if message.from_finalize or "from_finalize" not in message.raw:
                while self._finalize_waiters:
                    waiter = self._finalize_waiters.popleft()
                    if not waiter.done():
                        waiter.set_result(message)
                        break
            if message.is_last and self._last is not None and not self._last.done():
                self._last.set_result(message)
        self._queue.put_nowait(message)

    def _settle(self, error: PulseError | None) -> None:
        """At the end of the connection: fail whatever still waits for a message."""
        failure = error or PulseConnectionError("the stream ended before the awaited final")
        waiters = [*self._finalize_waiters, self._last]
        self._finalize_waiters.clear()
        for waiter in waiters:
            if waiter is not None and not waiter.done():
                waiter.set_exception(failure)
                waiter.exception()  # marked retrieved: nobody may be waiting any more

    def fail(self, error: BaseException) -> None:
        """End `async for` by raising `error` (used when the audio source fails)."""
        self._queue.put_nowait(_End(error))

    async def receive(self, timeout: float | None = None) -> Message | None:
        """The next message, or None once the session is over."""
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if isinstance(item, _End):
            self._queue.put_nowait(item)  # every later receive() sees the end too
            if item.error is not None:
                raise item.error
            return None
        return item

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Message]:
        while (message := await self.receive()) is not None:
            yield message


class AsyncPulseClient:
    """A Pulse client for asyncio. Works against pulse-stt and the hosted API alike.

    `base_url`: `http(s)://host[:port]` (default `$PULSE_STT_URL`, else
    `http://127.0.0.1:8000`); `api_key`: default `$PULSE_STT_API_KEY`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 600,
        open_timeout: float = 10,
    ) -> None:
        self.endpoints = Endpoints.from_base_url(base_url)
        self._key = resolve_api_key(api_key)
        self.timeout = timeout
        self.open_timeout = open_timeout

    @property
    def base_url(self) -> str:
        return self.endpoints.base_url

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    async def __aenter__(self) -> AsyncPulseClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    # --- streaming -------------------------------------------------------------------

    def connect(self, options: StreamOptions | None = None) -> AsyncStream:
        """A stream to open with `async with` (or `await stream.open()`)."""
        options = options or StreamOptions()
        return AsyncStream(
            self.endpoints.live(options.query_string()),
            self._headers(),
            open_timeout=self.open_timeout,
        )

    async def stream(
        self, source: AudioSource, options: StreamOptions | None = None
    ) -> AsyncIterator[Message]:
        """Stream all of `source` and yield every message, ending after `is_last`.

        `source`: an async iterable of audio frames (`file_frames(...)`,
        `microphone_frames()`, your own), a plain iterable of frames, or one bytes buffer.
        When it is exhausted `close_stream` is sent, so the last finals still arrive.
        """
        frames = _as_async_frames(source)
        async with self.connect(options) as stream:
            pump = asyncio.create_task(_pump(frames, stream), name="pulse-stream-pump")
            try:
                async for message in stream:
                    yield message
            finally:
                if not pump.done():
                    pump.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await pump

    # --- whole files -----------------------------------------------------------------

    async def transcribe_file(
        self,
        file: str | PathLike[str] | bytes | BinaryIO,
        options: FileOptions | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> FileResult:
        """POST a whole audio file (any container the server decodes: WAV, MP3, FLAC,
        Ogg, WebM, M4A…). `progress(sent, total)` is called as the upload proceeds."""
        options = options or FileOptions()
        return await post_file(
            self.endpoints.rest(options.query_string()),
            self._headers(),
            file,
            timeout=self.timeout,
            progress=progress,
        )

    async def transcribe_url(self, url: str, options: FileOptions | None = None) -> FileResult:
        """Ask the server to fetch and transcribe a file at a public http(s) URL."""
        options = options or FileOptions()
        return await post_url(
            self.endpoints.rest(options.query_string()), self._headers(), url, timeout=self.timeout
        )

    # --- browser tokens ----------------------------------------------------------------

    async def create_token(self, ttl_s: int | None = None) -> BrowserToken:
        """Mint a short-lived token for a browser (pulse-stt's `POST /v1/tokens`; the
        server caps `ttl_s`). Use it where a key goes: `AsyncPulseClient(url, token)`."""
        return await post_token(self.endpoints.http(TOKENS_PATH), self._headers(), ttl_s)


async def _pump(frames: AsyncIterator[bytes], stream: AsyncStream) -> None:
    """Send every frame, then close_stream (without waiting: the reader sees is_last)."""
    try:
        async for frame in frames:
            if stream.closed:
                return
            if frame:
                await stream.send(frame)
        await stream.end_audio()
    except PulseConnectionError:
        return  # the reader reports how the connection ended
    except Exception as exc:  # the source failed: stop the stream and raise it there
        stream.fail(exc)
        await stream.abort()


def _as_async_frames(source: AudioSource) -> AsyncIterator[bytes]:
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        chunks = [data[i : i + _BYTES_CHUNK] for i in range(0, len(data), _BYTES_CHUNK)]
        return _from_sequence(chunks)
    if isinstance(source, AsyncIterable):
        return aiter(source)
    if isinstance(source, Sequence):
        return _from_sequence(cast(Sequence[bytes], source))
    if isinstance(source, Iterable):
        return _from_iterable(source)
    raise TypeError(
        f"source must be an async iterable of bytes, an iterable of bytes or bytes; "
        f"got {type(source).__name__}"
    )


async def _from_sequence(frames: Sequence[bytes]) -> AsyncIterator[bytes]:
    """Frames already in memory."""
    for frame in frames:
        yield frame


async def _from_iterable(frames: Iterable[bytes]) -> AsyncIterator[bytes]:
    """Frames of a blocking iterable, each fetched on a worker thread (never on the loop)."""
    iterator = iter(frames)
    done = object()
    while (frame := await asyncio.to_thread(next, iterator, done)) is not done:
        yield frame  # type: ignore[misc]


def _reason(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


def _close_reason(exc: websockets.ConnectionClosed) -> str:
    frame = exc.rcvd
    if frame is None:
        return "no close frame"
    return f"code {frame.code}" + (f": {frame.reason}" if frame.reason else "")


def _close_reason_code(ws: ClientConnection) -> str:
    code = ws.close_code
    reason = ws.close_reason
    return f"code {code}" + (f": {reason}" if reason else "") if code else "connection lost"


__all__ = ["AsyncPulseClient", "AsyncStream", "AudioSource"]
