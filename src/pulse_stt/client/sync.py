"""The blocking client: the asyncio client run on an event loop of its own thread.

```python
with PulseClient("http://127.0.0.1:8000", api_key) as client:
    print(client.transcribe_file("call.mp3").transcription)
    for message in client.stream_file("call.mp3", StreamOptions(language="en")):
        if isinstance(message, Transcription) and message.is_final:
            print(message.transcript)
```

Each `PulseClient` owns one loop thread (started on first use, stopped by `close()` or
the `with` block); nothing is shared between clients.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from os import PathLike
from types import TracebackType
from typing import Any, BinaryIO, TypeVar

from pulse_stt.client.messages import BrowserToken, FileResult, Message, Transcription
from pulse_stt.client.options import FileOptions, StreamOptions
from pulse_stt.client.rest import ProgressCallback
from pulse_stt.client.sources import file_frames
from pulse_stt.client.streaming import AsyncPulseClient, AsyncStream, AudioSource

T = TypeVar("T")


async def _next(generator: AsyncIterator[T]) -> T:
    """`anext` as a coroutine (what run_coroutine_threadsafe takes)."""
    return await anext(generator)


class _LoopThread:
    """An event loop running on a daemon thread, for one client."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self._running_loop())
        try:
            return future.result()
        except BaseException:
            future.cancel()  # e.g. KeyboardInterrupt while waiting: stop the work too
            raise

    def iterate(self, generator: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    item = self.run(_next(generator))
                except StopAsyncIteration:
                    return
                yield item
        finally:
            aclose = getattr(generator, "aclose", None)
            if aclose is not None and self._loop is not None and not self._loop.is_closed():
                self.run(aclose())

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                loop = asyncio.new_event_loop()
                thread = threading.Thread(
                    target=loop.run_forever, name="pulse-stt-client", daemon=True
                )
                thread.start()
                self._loop, self._thread = loop, thread
            return self._loop

    def stop(self) -> None:
        with self._lock:
            loop, thread = self._loop, self._thread
            self._loop = self._thread = None
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(_cancel_tasks(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _cancel_tasks() -> None:
    """Whatever is still running on a client's loop (an abandoned stream) ends here."""
    current = asyncio.current_task()
    tasks = [t for t in asyncio.all_tasks() if t is not current]
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


class SyncStream:
    """A streaming session for blocking code; see `AsyncStream` for the semantics.

    ```python
    with client.connect(StreamOptions(language="en")) as stream:
        stream.send(audio_bytes)
        final = stream.finalize()      # this turn's final; the session stays open
        last = stream.close()          # close_stream, then the is_last message
    ```
    """

    def __init__(self, loop: _LoopThread, stream: AsyncStream) -> None:
        self._loop = loop
        self._stream = stream

    def __enter__(self) -> SyncStream:
        self._loop.run(self._stream.open())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._loop.run(self._stream.__aexit__(exc_type, exc, tb))

    @property
    def session_id(self) -> str | None:
        return self._stream.session_id

    @property
    def closed(self) -> bool:
        return self._stream.closed

    def send(self, audio: bytes) -> None:
        self._loop.run(self._stream.send(audio))

    def finalize(self, *, wait: bool = True, timeout: float | None = 60) -> Transcription | None:
        return self._loop.run(self._stream.finalize(wait=wait, timeout=timeout))

    def end_audio(self) -> None:
        self._loop.run(self._stream.end_audio())

    def close(self, *, timeout: float | None = 120) -> Transcription | None:
        return self._loop.run(self._stream.close(timeout=timeout))

    def abort(self) -> None:
        self._loop.run(self._stream.abort())

    def receive(self, timeout: float | None = None) -> Message | None:
        """The next message (None once the session is over); TimeoutError after
        `timeout` seconds without one."""
        return self._loop.run(self._stream.receive(timeout))

    def __iter__(self) -> Iterator[Message]:
        while (message := self.receive()) is not None:
            yield message


class PulseClient:
    """A blocking Pulse client. Works against pulse-stt and the hosted API alike.

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
        self.aio = AsyncPulseClient(base_url, api_key, timeout=timeout, open_timeout=open_timeout)
        self._loop = _LoopThread()

    @property
    def base_url(self) -> str:
        return self.aio.base_url

    def __enter__(self) -> PulseClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the client's loop thread (a later call starts a new one)."""
        self._loop.stop()

    def transcribe_file(
        self,
        file: str | PathLike[str] | bytes | BinaryIO,
        options: FileOptions | None = None,
        *,
        progress: ProgressCallback | None = None,
    ) -> FileResult:
        """POST a whole audio file; see `AsyncPulseClient.transcribe_file`."""
        return self._loop.run(self.aio.transcribe_file(file, options, progress=progress))

    def transcribe_url(self, url: str, options: FileOptions | None = None) -> FileResult:
        return self._loop.run(self.aio.transcribe_url(url, options))

    def create_token(self, ttl_s: int | None = None) -> BrowserToken:
        """Mint a short-lived browser token (pulse-stt's `POST /v1/tokens`)."""
        return self._loop.run(self.aio.create_token(ttl_s))

    def connect(self, options: StreamOptions | None = None) -> SyncStream:
        """A stream to open with `with`."""
        return SyncStream(self._loop, self.aio.connect(options))

    def stream(
        self, source: AudioSource, options: StreamOptions | None = None
    ) -> Iterator[Message]:
        """Stream `source` (frames: an iterable of bytes, an async iterable, or one bytes
        buffer) and yield every message until `is_last`."""
        return self._loop.iterate(self.aio.stream(source, options))

    def stream_file(
        self,
        file: str | PathLike[str] | bytes | BinaryIO,
        options: StreamOptions | None = None,
        *,
        realtime: bool = False,
        frame_ms: int = 20,
    ) -> Iterator[Message]:
        """Stream an audio file of any container (decoded to 16 kHz linear16), at real-time
        pace with `realtime=True`, and yield every message until `is_last`."""
        frames = file_frames(file, frame_ms=frame_ms, realtime=realtime)
        return self.stream(frames, options)
