"""What a soak caller sends: the run's options, the recordings (as linear16 and as Opus
packets), and the bad frames (malformed text, Opus packets every decoder must refuse)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np

from pulse_stt.client.sources import pcm16
from pulse_stt.protocol import MODEL_RATE as RATE

OPUS_PACKET_S = 0.02  # the packets made here are 20 ms each

Behaviour = Literal["finalize", "eou", "close", "drop", "drop_with_close"]
BEHAVIOURS: tuple[Behaviour, ...] = ("finalize", "eou", "close", "drop", "drop_with_close")
BadFrame = Literal["text", "opus", "noise"]

MALFORMED_TEXT = (
    "hello",
    "",
    "{",
    "[1, 2, 3]",
    '{"type": null}',
    '{"type": 5}',
    '{"kind": "finalize"}',
    '"finalize"',
    "null",
    '{"type": ["finalize"]}',
)


@dataclass(frozen=True)
class SoakClip:
    """A recording to stream: 16 kHz mono float32, its reference text, its Opus packets."""

    audio: np.ndarray
    text: str | None = None
    opus: tuple[bytes, ...] = ()  # 20 ms packets of `audio`, for encoding=opus connections

    @classmethod
    def with_opus(cls, audio: np.ndarray, text: str | None = None) -> SoakClip:
        return cls(audio, text, opus_packets(audio))

    @cached_property
    def pcm(self) -> bytes:
        """`audio` as linear16, converted once (on first use) for every turn that sends it."""
        return pcm16(self.audio)


def opus_packets(audio: np.ndarray) -> tuple[bytes, ...]:
    """20 ms Opus packets of 16 kHz audio, from FFmpeg's libopus encoder (through PyAV)."""
    import av

    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = 24_000
    encoder.open()
    frame_size = int(RATE * OPUS_PACKET_S)
    pcm = np.frombuffer(pcm16(audio), "<i2")
    pcm = np.concatenate([pcm, np.zeros(-pcm.size % frame_size, np.int16)])
    packets: list[bytes] = []
    for start in range(0, pcm.size, frame_size):
        frame = av.AudioFrame.from_ndarray(
            pcm[None, start : start + frame_size], format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = start
        packets += [bytes(p) for p in encoder.encode(frame)]
    packets += [bytes(p) for p in encoder.encode(None)]
    return tuple(packets)


def invalid_opus_packet(rng: random.Random) -> bytes:
    """A packet RFC 6716 (section 3.4) forbids, so every decoder must refuse it: code 3
    with no frames or more than 48, or code 2 whose first frame runs past the end."""
    kind = rng.randrange(3)
    config = rng.randrange(32) << 3
    if kind == 0:
        return bytes([config | 3, rng.choice((0x00, 0x40, 0x80))])  # code 3, M = 0
    if kind == 1:
        count = rng.randrange(49, 64)  # code 3, M > 48 (more than 120 ms)
        return bytes([config | 3, count]) + rng.randbytes(rng.randrange(0, 40))
    length = rng.randrange(60, 252)  # code 2: the first frame is longer than the packet
    return bytes([config | 2, length]) + rng.randbytes(rng.randrange(0, length // 2))


@dataclass(frozen=True)
class SoakOptions:
    streams: int = 4
    duration_s: float = 60.0
    speed: float = 1.0
    seed: int = 1
    frame_ms: int = 20  # linear16 frame size
    eou_timeout_ms: int = 800
    weights: tuple[float, ...] = (0.35, 0.25, 0.15, 0.125, 0.125)  # per BEHAVIOURS
    bad_frame_chance: float = 0.2  # per turn
    opus_share: float = 0.25  # connections that stream encoding=opus instead of linear16
    legacy_share: float = 0.2  # connections on /waves/v1/pulse/get_text
    final_timeout_s: float = 60.0  # longest wait for a final owed
    stagger_s: float = 0.5
    sample_every_s: float = 5.0
