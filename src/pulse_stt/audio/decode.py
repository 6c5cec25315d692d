"""Bytes of one declared encoding → float32 mono samples at the declared rate: picks the
streaming decoder for a session's encoding.

The decoders live beside this module (audio/pcm.py, audio/opus.py), their shared error and
protocol in audio/base.py; none of them imports this module. `AudioDecodeError` and
`StreamDecoder` are re-exported here for callers that take the factory and its error
from one place.
"""

from __future__ import annotations

from pulse_stt.audio.base import AudioDecodeError, StreamDecoder
from pulse_stt.audio.opus import make_opus_decoder
from pulse_stt.audio.pcm import make_pcm_decoder

__all__ = ["AudioDecodeError", "StreamDecoder", "make_decoder"]

OPUS_ENCODINGS = ("opus", "ogg_opus")


def make_decoder(encoding: str, sample_rate: int) -> StreamDecoder:
    """A fresh streaming decoder for one session's declared encoding."""
    if encoding in OPUS_ENCODINGS:
        return make_opus_decoder(encoding, sample_rate)
    decoder = make_pcm_decoder(encoding, sample_rate)
    if decoder is None:
        raise AudioDecodeError(f"unknown encoding {encoding!r}")
    return decoder
