"""Small inputs that expand into a great deal of audio or memory, built byte by byte, and
the checks of what decoders make of hostile input.

Shared by the unit tests of the decoders, the end-to-end tests against the server and
bench/fuzz_atheris.py.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np

from pulse_stt.audio.decode import AudioDecodeError, StreamDecoder
from pulse_stt.audio.opus import _OGG_HEADER as OGG_PAGE_HEADER
from pulse_stt.audio.opus import OPUS_RATE

# Code 3 (several frames), CELT fullband 20 ms, 6 frames, CBR, no payload: 120 ms per packet.
TINY_OPUS_PACKET = bytes([(31 << 3) | 3, 0x06])
SECONDS_PER_TINY_PACKET = 0.12
# The most one Ogg page holds: 255 packets of the longest Opus duration (120 ms), 30.6 s.
PAGE_SAMPLES = int(255 * 0.12 * OPUS_RATE)


def check_samples(samples: np.ndarray, *, max_size: int | None = None) -> None:
    """Raise AssertionError unless `samples` are what a decoder promises: 1-D float32,
    finite, within [-1, 1], and (with `max_size`) no more than `max_size` of them."""
    if samples.dtype != np.float32 or samples.ndim != 1:
        raise AssertionError(f"samples of dtype {samples.dtype}, shape {samples.shape}")
    if not np.isfinite(samples).all() or np.abs(samples).max(initial=0.0) > 1.0 + 1e-6:
        raise AssertionError("samples not finite or outside [-1, 1]")
    if max_size is not None and samples.size > max_size:
        raise AssertionError(f"one call returned {samples.size} samples")


def drain(
    decoder: StreamDecoder,
    data: bytes,
    *,
    check: Callable[[np.ndarray], None] | None = None,
    max_calls: int = 100_000,
) -> tuple[int, int, list[str]]:
    """Decode a frame and its backlog as the server does (see StreamRunner._feed): (samples,
    largest piece, errors). `check` sees every piece; AssertionError when the backlog is
    still not drained after `max_calls` calls."""
    total, largest, errors = 0, 0, []
    chunk = data
    for _ in range(max_calls):
        try:
            samples = decoder.decode(chunk)
            if check is not None:
                check(samples)
            total += samples.size
            largest = max(largest, samples.size)
        except AudioDecodeError as exc:
            errors.append(str(exc))
        if not decoder.has_backlog:
            return total, largest, errors
        chunk = b""
    raise AssertionError("the backlog never drained")


def ogg_page(packets: list[bytes], sequence: int, *, flags: int = 0, version: int = 0) -> bytes:
    """One Ogg page holding whole packets (each under 255 bytes). The CRC is not checked by
    the stream decoder, so it is left at zero."""
    lacing = bytes(len(p) for p in packets)
    header = OGG_PAGE_HEADER.pack(b"OggS", version, flags, 0, 1, sequence, 0, len(packets))
    return header + lacing + b"".join(packets)


def opus_head_pages() -> bytes:
    """The two header pages of a mono Ogg/Opus stream: OpusHead, then OpusTags."""
    head = b"OpusHead" + bytes([1, 1]) + struct.pack("<HIhB", 312, 48000, 0, 0)
    tags = b"OpusTags" + struct.pack("<I", 0) + struct.pack("<I", 0)
    return ogg_page([head], 0, flags=2) + ogg_page([tags], 1)


def ogg_opus_bomb(pages: int) -> tuple[bytes, float]:
    """An Ogg/Opus stream of `pages` pages of 255 two-byte packets, and its seconds of audio:
    about 800 bytes per 30.6 s (1 MiB is some ten hours, 7 GB as float32 at 48 kHz)."""
    body = b"".join(ogg_page([TINY_OPUS_PACKET] * 255, 2 + i) for i in range(pages))
    return opus_head_pages() + body, pages * 255 * SECONDS_PER_TINY_PACKET


def endless_ogg_packet(pages: int) -> bytes:
    """Pages whose lacing values are all 255: one packet that never ends."""
    header = OGG_PAGE_HEADER.pack
    return opus_head_pages() + b"".join(
        header(b"OggS", 0, 0, 0, 1, 2 + i, 0, 255) + b"\xff" * 255 + bytes(255 * 255)
        for i in range(pages)
    )


def low_rate_wav(rate: int, data: bytes) -> bytes:
    """An 8-bit mono WAV with a tiny declared sample rate: few bytes, hours of audio."""
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate, 1, 8)
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + b"data"
        + struct.pack("<I", len(data))
        + data
    )
