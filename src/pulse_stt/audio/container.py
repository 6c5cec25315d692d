"""Whole files: container and codec detected from the bytes (FFmpeg via PyAV).

Decoded, downmixed and resampled to 16 kHz mono float32 in chunks, so a long file is
never held as float32 more than once.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Generator, Iterator
from typing import BinaryIO

import av
import numpy as np

from pulse_stt.audio.base import AudioDecodeError
from pulse_stt.protocol import MODEL_RATE

log = logging.getLogger(__name__)

SUPPORTED_HINT = "send a WAV, MP3, FLAC, Ogg (Opus/Vorbis), WebM, M4A/AAC or similar audio file"


class AudioTooLongError(AudioDecodeError):
    """The file holds more audio than the caller accepts (see `max_seconds`)."""


def iter_file_audio(
    source: bytes | BinaryIO, *, max_seconds: float | None = None
) -> Iterator[np.ndarray]:
    """Yield 16 kHz mono float32 chunks of the first audio stream in `source`.

    Raises AudioDecodeError when nothing decodable is found. Damage after some audio was
    decoded (a truncated upload, say) ends the audio there instead: what was decodable is
    still transcribed. With `max_seconds`, raises AudioTooLongError as soon as the decoded
    audio passes it: a few kB that declare a sample rate of 1 Hz are days of audio.
    """
    chunks = _decode_file(source)
    return chunks if max_seconds is None else _limited(chunks, max_seconds)


def _decode_file(source: bytes | BinaryIO) -> Generator[np.ndarray, None, None]:
    stream_source = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        container = av.open(stream_source, mode="r", metadata_errors="ignore")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise AudioDecodeError(
            f"could not detect an audio format ({_reason(exc)}); {SUPPORTED_HINT}"
        ) from None
    with container:
        if not container.streams.audio:
            raise AudioDecodeError(f"the file has no audio stream; {SUPPORTED_HINT}")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=MODEL_RATE)
        decoded_any = False
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler follow sample counts, not damaged pts
                for out in resampler.resample(frame):
                    decoded_any = True
                    yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
        except (av.error.FFmpegError, ValueError) as exc:
            if not decoded_any:
                raise AudioDecodeError(
                    f"could not decode the audio ({_reason(exc)}); {SUPPORTED_HINT}"
                ) from None
            log.warning("audio ends early: decoding stopped at damaged data (%s)", _reason(exc))
        for out in resampler.resample(None):
            decoded_any = True
            yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
        if not decoded_any:
            raise AudioDecodeError(f"the file contains no decodable audio; {SUPPORTED_HINT}")


def _limited(chunks: Generator[np.ndarray, None, None], max_seconds: float) -> Iterator[np.ndarray]:
    """`chunks` until their audio passes `max_seconds`, then AudioTooLongError (the chunk
    that passes it is not handed out)."""
    left = int(max_seconds * MODEL_RATE)
    try:
        for chunk in chunks:
            left -= chunk.size
            if left < 0:
                raise AudioTooLongError(
                    f"the file holds more than {max_seconds:g} s of audio, this server's "
                    "limit for one request (max_file_audio_s); split it into shorter files, "
                    "or stream it over the WebSocket"
                )
            yield chunk
    finally:
        chunks.close()  # closes the container now, not when garbage collected


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
