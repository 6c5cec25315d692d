"""Whole files: container and codec detected from the bytes (FFmpeg via PyAV).

Decoded, downmixed (or, for `multichannel=true`, kept channel by channel) and resampled to
16 kHz float32 in chunks, so a long file is never held as float32 more than once.
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
    still transcribed. With `max_seconds`, raises AudioTooLongError before decoding when the
    header declares more (a few kB that declare a sample rate of 1 Hz are days of audio),
    and otherwise as soon as the decoded audio passes it. A declared sample rate below
    MIN_FILE_SAMPLE_RATE is refused (AudioDecodeError) before decoding.
    """
    chunks = _decode_file(source, max_seconds)
    return chunks if max_seconds is None else _limited(chunks, max_seconds)


class TooManyChannelsError(AudioDecodeError):
    """A multichannel file with more channels than the caller accepts (`max_channels`)."""


def iter_file_channels(
    source: bytes | BinaryIO, *, max_channels: int, max_seconds: float | None = None
) -> Iterator[np.ndarray]:
    """`iter_file_audio`, but each channel kept: chunks of shape (channels, samples), 16 kHz
    float32. The duration limit counts the recording's length once, not once per channel.
    A file of more than `max_channels` channels is refused (TooManyChannelsError) before
    decoding."""
    chunks = _decode_file(source, max_seconds, max_channels=max_channels)
    return chunks if max_seconds is None else _limited(chunks, max_seconds)


# Below this a declared sample rate is no recording of speech (telephony is 8000 Hz): a
# header that says 1 Hz turns each byte into a second of audio to resample and transcribe.
MIN_FILE_SAMPLE_RATE = 4000


def _too_long(max_seconds: float) -> AudioTooLongError:
    return AudioTooLongError(
        f"the file holds more than {max_seconds:g} s of audio, this server's "
        "limit for one request (max_file_audio_s); split it into shorter files, "
        "or stream it over the WebSocket"
    )


def declared_seconds(
    container: av.container.InputContainer, stream: av.AudioStream
) -> float | None:
    """The audio's duration as the file's header declares it (for WAV and other PCM
    containers FFmpeg computes it from the data size and the declared rate); None when
    the header does not say."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def _check_declared(
    container: av.container.InputContainer, stream: av.AudioStream, max_seconds: float | None
) -> None:
    """Refuse before decoding what the header says is over the limit or not speech audio:
    decoding, resampling and transcribing it is where the cost is."""
    declared = declared_seconds(container, stream)
    if max_seconds is not None and declared is not None and declared > max_seconds:
        raise _too_long(max_seconds)
    rate = getattr(stream.codec_context, "sample_rate", None)
    if rate and rate < MIN_FILE_SAMPLE_RATE:
        raise AudioDecodeError(
            f"the file declares a sample rate of {rate} Hz; audio below "
            f"{MIN_FILE_SAMPLE_RATE} Hz is not accepted; {SUPPORTED_HINT}"
        )


def _check_channels(stream: av.AudioStream, max_channels: int) -> None:
    channels = stream.codec_context.layout.nb_channels
    if channels > max_channels:
        raise TooManyChannelsError(
            f"the file has {channels} audio channels; this server transcribes at most "
            f"{max_channels} channels of one file (max_channels); send a file of at most "
            f"{max_channels} channels, or send it without multichannel=true to have its "
            "channels mixed into one"
        )


def _decode_file(
    source: bytes | BinaryIO,
    max_seconds: float | None = None,
    *,
    max_channels: int | None = None,
) -> Generator[np.ndarray, None, None]:
    """1-D mono chunks; with `max_channels`, (channels, samples) chunks."""
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
        _check_declared(container, stream, max_seconds)
        if max_channels is None:
            resampler = av.AudioResampler(format="flt", layout="mono", rate=MODEL_RATE)
        else:
            _check_channels(stream, max_channels)
            # planar: one row per channel, in the file's layout
            resampler = av.AudioResampler(format="fltp", layout=None, rate=MODEL_RATE)
        shape = (-1,) if max_channels is None else (stream.codec_context.layout.nb_channels, -1)
        decoded_any = False
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler follow sample counts, not damaged pts
                for out in resampler.resample(frame):
                    decoded_any = True
                    yield out.to_ndarray().reshape(shape).astype(np.float32, copy=False)
        except (av.error.FFmpegError, ValueError) as exc:
            if not decoded_any:
                raise AudioDecodeError(
                    f"could not decode the audio ({_reason(exc)}); {SUPPORTED_HINT}"
                ) from None
            log.warning("audio ends early: decoding stopped at damaged data (%s)", _reason(exc))
        for out in resampler.resample(None):
            decoded_any = True
            yield out.to_ndarray().reshape(shape).astype(np.float32, copy=False)
        if not decoded_any:
            raise AudioDecodeError(f"the file contains no decodable audio; {SUPPORTED_HINT}")


def _limited(chunks: Generator[np.ndarray, None, None], max_seconds: float) -> Iterator[np.ndarray]:
    """`chunks` until their audio passes `max_seconds`, then AudioTooLongError (the chunk
    that passes it is not handed out). A chunk of several channels counts its length once."""
    left = int(max_seconds * MODEL_RATE)
    try:
        for chunk in chunks:
            left -= chunk.shape[-1]
            if left < 0:
                raise _too_long(max_seconds)
            yield chunk
    finally:
        chunks.close()  # closes the container now, not when garbage collected


def _reason(exc: Exception) -> str:
    return getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
