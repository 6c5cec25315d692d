"""What every streaming decoder shares: the error for bytes that are not audio of the
declared encoding, and the decoder protocol.

The concrete decoders (audio/pcm.py, audio/opus.py) and whole-file decoding
(audio/container.py) import this module; audio/decode.py picks one decoder per declared
encoding. Nothing here imports any of them.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class AudioDecodeError(ValueError):
    """Bytes that cannot be audio of the declared encoding."""


class StreamDecoder(Protocol):
    output_rate: int  # rate of the samples it returns (the declared rate, or 48 kHz for Opus)
    # Input already taken that `decode(b"")` turns into more audio. A format that packs much
    # audio into few bytes (Ogg/Opus) returns a bounded amount per call and sets this.
    has_backlog: bool

    def decode(self, data: bytes) -> np.ndarray:
        """Decode the next chunk; returns float32 samples in [-1, 1] (possibly empty)."""

    def flush(self) -> np.ndarray:
        """End of stream: whatever can still be decoded."""


# What a decoder returns when a chunk completes no sample; shared, and having no element
# it cannot be written to.
EMPTY = np.zeros(0, dtype=np.float32)
