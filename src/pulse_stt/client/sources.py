"""Audio sources for `stream()`: files of any container, and the microphone.

Both yield 16 kHz mono `linear16` frames, the defaults of `StreamOptions`. Decoding (PyAV)
runs on a worker thread and the microphone is read by PortAudio's own thread, so neither
blocks the event loop.

Decoding files needs FFmpeg (PyAV) and a resampler (soxr): the `audio` extra
(`pip install 'pulse-stt[audio]'`; the `server` extra has them too). They are imported on
first use, so `import pulse_stt.client` stays light and REST uploads need neither.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from os import PathLike
from typing import Any, BinaryIO

import numpy as np

from pulse_stt.protocol import MODEL_RATE

AUDIO_EXTRA_HINT = (
    "decoding audio files needs the optional 'av' and 'soxr' packages: "
    "pip install 'pulse-stt[audio]'"
)
MIC_EXTRA_HINT = (
    "the microphone needs the optional 'sounddevice' package and the PortAudio library: "
    "pip install 'pulse-stt[mic]' (on Debian/Ubuntu also: apt-get install libportaudio2)"
)


def pcm16(samples: np.ndarray) -> bytes:
    """Float samples (nominally -1..1, clipped) as little-endian 16-bit PCM (linear16)."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


def _decoded_pcm(file: str | PathLike[str] | bytes | BinaryIO) -> Generator[bytes, None, None]:
    """16 kHz linear16 chunks of a whole file, decoded by FFmpeg (blocking)."""
    iter_file_audio = import_file_decoder()

    if isinstance(file, str | PathLike):
        with open(file, "rb") as handle:
            for chunk in iter_file_audio(handle):
                yield pcm16(chunk)
    else:
        for chunk in iter_file_audio(file):
            yield pcm16(chunk)


def audio_duration(file: str | PathLike[str]) -> float | None:
    """The file's duration in seconds from its container header (None when unknown, or
    when PyAV is not installed)."""
    try:
        import av
    except ImportError:
        return None

    try:
        with av.open(str(file), metadata_errors="ignore") as container:
            if container.streams.audio:
                stream = container.streams.audio[0]
                if stream.duration is not None and stream.time_base is not None:
                    return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / av.time_base
    except (av.error.FFmpegError, OSError, ValueError):
        return None
    return None


async def file_frames(
    file: str | PathLike[str] | bytes | BinaryIO,
    *,
    frame_ms: int = 20,
    realtime: bool = False,
    speed: float = 1.0,
    on_progress: Callable[[float], None] | None = None,
) -> AsyncIterator[bytes]:
    """Frames of `frame_ms` of 16 kHz mono linear16 from any audio file (WAV, MP3, FLAC,
    Ogg, WebM, M4A…; multi-channel is downmixed, any rate resampled).

    `realtime=True` paces the frames at `speed` × real time, as a live caller would send
    them; otherwise they come as fast as they decode. `on_progress(seconds)` is told the
    audio seconds yielded so far. Raises `AudioDecodeError` (a ValueError) for a file with
    no decodable audio.
    """
    if frame_ms <= 0 or speed <= 0:
        raise ValueError("frame_ms and speed must be positive")
    frame_bytes = MODEL_RATE * frame_ms // 1000 * 2
    chunks = _decoded_pcm(file)
    done = object()
    pending = b""
    sent_bytes = 0
    started = time.monotonic()
    try:
        while True:
            chunk = await asyncio.to_thread(next, chunks, done)
            if chunk is done:
                break
            assert isinstance(chunk, bytes)
            pending += chunk
            while len(pending) >= frame_bytes:
                frame, pending = pending[:frame_bytes], pending[frame_bytes:]
                sent_bytes += len(frame)
                yield frame
                if on_progress is not None:
                    on_progress(sent_bytes / 2 / MODEL_RATE)
                if realtime:
                    ahead = sent_bytes / 2 / MODEL_RATE / speed - (time.monotonic() - started)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        if pending:
            sent_bytes += len(pending)
            yield pending
            if on_progress is not None:
                on_progress(sent_bytes / 2 / MODEL_RATE)
    finally:
        # Closes the container off the loop. (If a cancelled read is still running on its
        # thread, the generator cannot be closed now; it is closed when collected.)
        with contextlib.suppress(ValueError):
            await asyncio.to_thread(chunks.close)


def import_file_decoder() -> Callable[[bytes | BinaryIO], Iterator[np.ndarray]]:
    """The server's file decoder (any container → 16 kHz mono float32 chunks); ImportError
    naming the `audio` extra when PyAV or soxr is missing."""
    try:
        from pulse_stt.audio.container import iter_file_audio
    except ImportError as exc:
        raise ImportError(f"{AUDIO_EXTRA_HINT} ({exc})") from exc
    return iter_file_audio


def import_sounddevice() -> Any:
    try:
        import sounddevice
    except ImportError as exc:
        raise ImportError(MIC_EXTRA_HINT) from exc
    except OSError as exc:  # the module is there but PortAudio is not
        raise ImportError(f"{MIC_EXTRA_HINT} ({exc})") from exc
    return sounddevice


async def microphone_frames(
    *,
    frame_ms: int = 20,
    device: int | str | None = None,
    max_queued_s: float = 10.0,
) -> AsyncIterator[bytes]:
    """Frames of `frame_ms` of 16 kHz mono linear16 from a microphone (default device, or
    `device` by index or name), until the consumer stops iterating.

    Needs the `mic` extra (`pip install 'pulse-stt[mic]'`, which installs sounddevice);
    raises ImportError naming it otherwise. If the consumer falls more than
    `max_queued_s` behind, the oldest audio is dropped rather than held without bound.
    """
    sounddevice = import_sounddevice()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    max_frames = max(1, int(max_queued_s * 1000 / frame_ms))

    def enqueue(frame: bytes) -> None:  # on the loop
        if queue.qsize() >= max_frames:
            queue.get_nowait()
        queue.put_nowait(frame)

    def callback(indata: Any, frames: int, time_info: Any, status: Any) -> None:
        # PortAudio's thread: copy the buffer (it is reused) and hand it to the loop.
        loop.call_soon_threadsafe(enqueue, bytes(indata))

    try:
        stream = sounddevice.RawInputStream(
            samplerate=MODEL_RATE,
            blocksize=MODEL_RATE * frame_ms // 1000,
            channels=1,
            dtype="int16",
            device=device,
            callback=callback,
        )
    except Exception as exc:  # PortAudioError, ValueError for a bad device
        raise OSError(
            f"could not open the microphone ({device or 'default device'}): {exc}"
        ) from exc
    await asyncio.to_thread(stream.start)
    try:
        while True:
            yield await queue.get()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(_stop_and_close, stream)


def _stop_and_close(stream: Any) -> None:
    try:
        stream.stop()
    finally:
        stream.close()
