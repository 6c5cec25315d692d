"""Opus streaming decoders: raw packets (`opus`) and an Ogg/Opus byte stream (`ogg_opus`).

FFmpeg's Opus decoder (through PyAV) does the decoding. For `ogg_opus` we only undo the
Ogg framing (RFC 3533: pages of lacing-delimited packets) incrementally, because a
container demuxer wants a seekable file or the whole stream, and our bytes arrive cut
at arbitrary points across frames.
"""

from __future__ import annotations

import struct

import av
import numpy as np

from pulse_stt.audio.base import EMPTY, AudioDecodeError

OPUS_RATE = 48_000  # FFmpeg's Opus decoder always outputs 48 kHz
# Most audio one `OggOpusDecoder.decode` call returns (plus at most one page, <= 30.6 s):
# two-byte packets of 120 ms make 1 MiB of Ogg/Opus about ten hours of audio, 7 GB as
# float32 at 48 kHz, so a frame's pages are decoded a bounded piece at a time.
MAX_DECODE_SAMPLES = 5 * OPUS_RATE
# An Opus packet is at most 48 frames of 1275 bytes; OpusTags may carry cover art.
_MAX_PACKET_BYTES = 1 << 20
_OGG_HEADER = struct.Struct(
    "<4sBBqIIIB"
)  # capture, version, flags, granule, serial, seq, crc, nseg


class _OpusPacketDecoder:
    """Decodes Opus packets to float32 mono at 48 kHz (stereo is downmixed)."""

    def __init__(self, channels: int = 2, extradata: bytes | None = None) -> None:
        self._codec = av.CodecContext.create("opus", "r")
        self._codec.sample_rate = OPUS_RATE
        self._codec.layout = "stereo" if channels >= 2 else "mono"
        if extradata:
            self._codec.extradata = extradata

    def decode_packet(self, payload: bytes) -> np.ndarray:
        try:
            frames = self._codec.decode(av.Packet(payload))
        except av.error.FFmpegError as exc:
            raise AudioDecodeError(f"invalid Opus packet ({exc.strerror or exc})") from None
        out = [_to_mono(frame.to_ndarray()) for frame in frames]
        return np.concatenate(out) if out else EMPTY


def _to_mono(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        # Planar (channels, n) or packed (1, n*channels) layouts from FFmpeg.
        samples = samples.mean(axis=0) if samples.shape[0] > 1 else samples[0]
    # Opus decodes to float and may overshoot full scale (garbage packets do, wildly);
    # every other decoder stays within [-1, 1], and so does this one.
    return np.clip(samples, -1.0, 1.0, dtype=np.float32)


class RawOpusDecoder:
    """`encoding=opus`: every binary frame is exactly one Opus packet (at most 120 ms)."""

    output_rate = OPUS_RATE
    has_backlog = False

    def __init__(self) -> None:
        self._packets = _OpusPacketDecoder(channels=2)

    def decode(self, data: bytes) -> np.ndarray:
        if not data:
            return EMPTY
        return self._packets.decode_packet(data)

    def flush(self) -> np.ndarray:
        return EMPTY


class OggOpusDecoder:
    """`encoding=ogg_opus`: an Ogg/Opus byte stream cut anywhere across frames."""

    output_rate = OPUS_RATE

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._partial_packet = bytearray()  # a packet continued on the next page
        self._packets: _OpusPacketDecoder | None = None
        self._serial: int | None = None
        self._headers_seen = 0  # OpusHead, then OpusTags
        self.has_backlog = False  # complete pages may wait for `decode(b"")`
        # Damage met after some audio of the same call: reported on the next call, so that
        # the audio decoded before it is not lost with the exception.
        self._deferred_error: AudioDecodeError | None = None

    def decode(self, data: bytes) -> np.ndarray:
        """Up to about MAX_DECODE_SAMPLES of the pages buffered; `has_backlog` says whether
        more may wait (call `decode(b"")` for them)."""
        self._buffer += data
        if self._deferred_error is not None:
            error, self._deferred_error = self._deferred_error, None
            self.has_backlog = self._may_hold_page()
            raise error
        out: list[np.ndarray] = []
        produced = 0
        try:
            while produced < MAX_DECODE_SAMPLES and (page := self._next_page()) is not None:
                for packet in page:
                    samples = self._on_packet(packet)
                    if samples.size:
                        out.append(samples)
                        produced += samples.size
        except AudioDecodeError as exc:
            if not out:
                self.has_backlog = self._may_hold_page()
                raise
            self._deferred_error = exc
            self.has_backlog = True
            return np.concatenate(out)
        self.has_backlog = produced >= MAX_DECODE_SAMPLES and self._may_hold_page()
        return np.concatenate(out) if out else EMPTY

    def _may_hold_page(self) -> bool:
        return len(self._buffer) >= _OGG_HEADER.size

    def flush(self) -> np.ndarray:
        """End of stream. Pages still waiting (`has_backlog`) are dropped: callers that
        must not lose them call `decode(b"")` until `has_backlog` is false first."""
        leftover = len(self._buffer)
        self._buffer.clear()
        self.has_backlog = False
        self._deferred_error = None
        if self._headers_seen == 0 and leftover:
            raise AudioDecodeError("the stream ended before a complete Ogg page arrived")
        return EMPTY

    def _next_page(self) -> list[bytes] | None:
        """Cut one complete page off the buffer; returns its complete packets."""
        buf = self._buffer
        if len(buf) < _OGG_HEADER.size:
            return None
        if buf[:4] != b"OggS":
            skipped = self._skip_to_next_page()
            raise AudioDecodeError(
                f"expected an Ogg page ('OggS'), skipped {skipped} bytes; with "
                "encoding=ogg_opus send an Ogg/Opus stream such as opusenc or a browser "
                "MediaRecorder produces"
            )
        _, version, _flags, _granule, serial, _seq, _crc, n_segments = _OGG_HEADER.unpack_from(buf)
        if version != 0:
            self._skip_to_next_page()
            raise AudioDecodeError(f"unsupported Ogg version {version}")
        header_end = _OGG_HEADER.size + n_segments
        if len(buf) < header_end:
            return None
        lacing = buf[_OGG_HEADER.size : header_end]
        page_end = header_end + sum(lacing)
        if len(buf) < page_end:
            return None
        if self._serial is None:
            self._serial = serial
        packets: list[bytes] = []
        position = header_end
        for size in lacing:
            self._partial_packet += buf[position : position + size]
            position += size
            if size < 255:  # a lacing value under 255 ends a packet
                packets.append(bytes(self._partial_packet))
                self._partial_packet.clear()
        del buf[:page_end]
        if len(self._partial_packet) > _MAX_PACKET_BYTES:
            # Pages whose lacing never ends a packet would grow this without bound.
            size = len(self._partial_packet)
            self._partial_packet.clear()
            raise AudioDecodeError(
                f"an Ogg packet runs past {_MAX_PACKET_BYTES} bytes ({size} so far) without "
                "ending; Opus packets are at most about 61 kB"
            )
        if serial != self._serial:
            return []  # a multiplexed second stream (e.g. video): not ours
        return packets

    def _skip_to_next_page(self) -> int:
        """Drop the buffer up to the next "OggS" after its first byte (or all but the last
        three bytes, which may start one) and any packet in progress: raising without
        consuming would refuse every later frame. Returns the number of bytes dropped."""
        buf = self._buffer
        next_page = buf.find(b"OggS", 1)
        skipped = next_page if next_page >= 0 else len(buf) - 3
        del buf[:skipped]
        self._partial_packet.clear()
        return skipped

    def _on_packet(self, packet: bytes) -> np.ndarray:
        if self._headers_seen == 0:
            if not packet.startswith(b"OpusHead") or len(packet) < 19:
                raise AudioDecodeError(
                    "the Ogg stream does not carry Opus (no OpusHead); send Ogg/Opus, "
                    "or pick the encoding that matches your audio"
                )
            self._packets = _OpusPacketDecoder(channels=packet[9], extradata=packet)
            self._headers_seen = 1
            return EMPTY
        if self._headers_seen == 1:
            self._headers_seen = 2  # OpusTags: metadata only
            return EMPTY
        assert self._packets is not None
        return self._packets.decode_packet(packet) if packet else EMPTY


def make_opus_decoder(encoding: str, _declared_rate: int) -> RawOpusDecoder | OggOpusDecoder:
    # Opus carries its own rate; the declared sample_rate is informational only.
    return RawOpusDecoder() if encoding == "opus" else OggOpusDecoder()
