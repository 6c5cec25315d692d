"""Little-endian integer PCM (`linear16`, `linear32`) and 8-bit G.711 (`mulaw`, `alaw`)
streaming decoders: a frame that ends mid-sample keeps the remainder until the next frame
brings the rest.
"""

from __future__ import annotations

import numpy as np

from pulse_stt.audio.base import EMPTY


class PcmDecoder:
    """Little-endian signed integer PCM, or 8-bit G.711 via a 256-entry lookup table."""

    has_backlog = False  # the output is never more than a few times the input

    def __init__(
        self,
        output_rate: int,
        sample_width: int,
        dtype: str,
        scale: float,
        table: np.ndarray | None = None,
    ):
        self.output_rate = output_rate
        self._width = sample_width
        self._dtype = np.dtype(dtype)
        self._scale = np.float32(scale)
        self._table = table
        self._pending = b""
        # Clients often send a .wav file's bytes as raw PCM: skip its header, not play it.
        self._at_start = table is None

    def decode(self, data: bytes) -> np.ndarray:
        if self._pending:
            data = self._pending + data
        if self._at_start:
            payload = _after_wav_header(data)
            if payload is None and len(data) < _MAX_WAV_HEADER:
                self._pending = data  # the start of a WAV header: wait for the rest
                return EMPTY
            self._at_start = False
            data = data if payload is None else payload
        usable = len(data) - len(data) % self._width
        self._pending = data[usable:]
        if usable == 0:
            return EMPTY
        raw = np.frombuffer(data, dtype=self._dtype, count=usable // self._width)
        if self._table is not None:
            return self._table[raw]
        return raw.astype(np.float32) * self._scale

    def flush(self) -> np.ndarray:
        # A trailing partial sample cannot be decoded; it is at most width-1 bytes of noise.
        self._pending = b""
        return EMPTY


_MAX_WAV_HEADER = 65536  # fmt, LIST and JUNK chunks before the samples


def _after_wav_header(data: bytes) -> bytes | None:
    """`data` past a WAV header; `data` itself if it is no WAV; None if the header is cut."""
    head = data[:12]
    if not (b"RIFF"[: len(head)] == head[:4] and (len(head) < 12 or head[8:12] == b"WAVE")):
        return data
    position = 12
    while position + 8 <= len(data):  # walk RIFF chunks to the start of "data"
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        if data[position : position + 4] == b"data":
            return data[position + 8 :]
        position += 8 + size + (size & 1)
    return None


def _mulaw_table() -> np.ndarray:
    """ITU-T G.711 µ-law expansion, as float32 in [-1, 1]."""
    codes = ~np.arange(256, dtype=np.uint8)
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = ((mantissa.astype(np.int32) << 3) + 0x84) << exponent
    linear = np.where(sign != 0, 0x84 - magnitude, magnitude - 0x84)
    return (linear / 32768.0).astype(np.float32)


def _alaw_table() -> np.ndarray:
    """ITU-T G.711 A-law expansion, as float32 in [-1, 1]."""
    codes = np.arange(256, dtype=np.uint8) ^ 0x55
    sign = codes & 0x80
    exponent = ((codes >> 4) & 0x07).astype(np.int32)
    mantissa = (codes & 0x0F).astype(np.int32)
    magnitude = np.where(
        exponent == 0,
        (mantissa << 4) + 8,
        ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0),
    )
    linear = np.where(sign != 0, magnitude, -magnitude)
    return (linear / 32768.0).astype(np.float32)


def make_pcm_decoder(encoding: str, sample_rate: int) -> PcmDecoder | None:
    """A PCM or G.711 decoder for `encoding`; None when it is none of those."""
    if encoding == "linear16":
        return PcmDecoder(sample_rate, 2, "<i2", 1.0 / 32768.0)
    if encoding == "linear32":
        return PcmDecoder(sample_rate, 4, "<i4", 1.0 / 2147483648.0)
    if encoding == "mulaw":
        return PcmDecoder(sample_rate, 1, "u1", 1.0, _mulaw_table())
    if encoding == "alaw":
        return PcmDecoder(sample_rate, 1, "u1", 1.0, _alaw_table())
    return None


SAMPLE_WIDTHS = {"linear16": 2, "linear32": 4, "mulaw": 1, "alaw": 1}


class Deinterleaver:
    """Splits frames of `channels` interleaved channels (`channels=N` on a stream) into
    one byte string per channel, each then decoded as a mono stream of the same encoding.

    A frame need not end on a whole sample frame (one sample of every channel): the rest
    is kept until the next frame brings the rest of it, as the decoders do for a sample.
    A WAV header at the start of the stream is skipped here, before the split."""

    def __init__(self, encoding: str, channels: int) -> None:
        self.channels = channels
        self._width = SAMPLE_WIDTHS[encoding]
        self._frame = self._width * channels
        self._pending = b""
        self._at_start = True

    def split(self, data: bytes) -> list[bytes]:
        if self._pending:
            data = self._pending + data
        if self._at_start:
            payload = _after_wav_header(data)
            if payload is None and len(data) < _MAX_WAV_HEADER:
                self._pending = data  # the start of a WAV header: wait for the rest
                return [b""] * self.channels
            self._at_start = False
            data = data if payload is None else payload
        usable = len(data) - len(data) % self._frame
        self._pending = data[usable:]
        if usable == 0:
            return [b""] * self.channels
        frames = np.frombuffer(data, dtype=np.uint8, count=usable).reshape(-1, self._frame)
        return [
            frames[:, c * self._width : (c + 1) * self._width].tobytes()
            for c in range(self.channels)
        ]
