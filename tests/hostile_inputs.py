"""Small inputs that expand into a great deal of audio or memory, built byte by byte.

Shared by the unit tests of the decoders and the end-to-end tests against the server.
"""

from __future__ import annotations

import struct

OGG_PAGE_HEADER = struct.Struct(
    "<4sBBqIIIB"
)  # capture, version, flags, granule, serial, seq, crc, n
# Code 3 (several frames), CELT fullband 20 ms, 6 frames, CBR, no payload: 120 ms per packet.
TINY_OPUS_PACKET = bytes([(31 << 3) | 3, 0x06])
SECONDS_PER_TINY_PACKET = 0.12


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
