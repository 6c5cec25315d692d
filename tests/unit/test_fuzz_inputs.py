"""Hostile input: arbitrary bytes and text into every decoder, the container sniffer and the
control-message parser. Each must return something sane or raise its own clear error —
never another exception, never hang, never hold more than it was given.

Query-parameter fuzzing lives in test_params.py.
"""

from __future__ import annotations

import contextlib
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pulse_stt.api.control import Control, ControlError, parse_control
from pulse_stt.audio.container import iter_file_audio
from pulse_stt.audio.decode import AudioDecodeError, make_decoder
from tests.support.audio import tone, wav_bytes
from tests.support.hostile_inputs import check_samples as _check_samples

ENCODINGS = ["linear16", "linear32", "alaw", "mulaw", "opus", "ogg_opus"]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _wav(seconds: float = 0.5, rate: int = 16000) -> bytes:
    return wav_bytes(tone(seconds, rate), rate)


@pytest.mark.parametrize("encoding", ENCODINGS)
@FAST
@given(frames=st.lists(st.binary(max_size=700), max_size=12))
def test_stream_decoders_take_any_bytes(encoding: str, frames: list[bytes]) -> None:
    decoder = make_decoder(encoding, 16000)
    for frame in frames:
        try:
            _check_samples(decoder.decode(frame))
        except AudioDecodeError as exc:
            assert str(exc)  # a message the client can act on
    with contextlib.suppress(AudioDecodeError):
        _check_samples(decoder.flush())


@pytest.mark.parametrize("encoding", ["linear16", "linear32", "alaw", "mulaw"])
@FAST
@given(data=st.binary(min_size=1, max_size=4000), cut=st.integers(1, 64))
def test_pcm_decoders_hold_back_at_most_a_header(encoding: str, data: bytes, cut: int) -> None:
    """Bounded memory: whatever is not yet returned is under the WAV-header allowance."""
    decoder = make_decoder(encoding, 16000)
    width = {"linear16": 2, "linear32": 4}.get(encoding, 1)
    produced = 0
    for i in range(0, len(data), cut):
        produced += decoder.decode(data[i : i + cut]).size
    held = len(data) - produced * width
    assert 0 <= held < 65536 + width


@FAST
@given(header=st.binary(max_size=200))
def test_wav_header_like_prefixes_end(header: bytes) -> None:
    """A "RIFF....WAVE" start with arbitrary chunk sizes (up to 4 GiB) must not loop."""
    decoder = make_decoder("linear16", 16000)
    _check_samples(decoder.decode(b"RIFF\xff\xff\xff\xffWAVE" + header))
    _check_samples(decoder.decode(b"\x00" * 70000))  # past the allowance: audio flows


@FAST
@given(data=st.binary(max_size=3000))
def test_container_sniffing_takes_any_bytes(data: bytes) -> None:
    try:
        for chunk in iter_file_audio(data):
            _check_samples(chunk)
    except AudioDecodeError as exc:
        assert "send a WAV" in str(exc)  # says what to send instead


@FAST
@given(
    cut=st.integers(0, len(_wav())),
    flips=st.lists(st.tuples(st.integers(0, len(_wav()) - 1), st.integers(1, 255)), max_size=8),
)
def test_container_survives_damaged_real_files(cut: int, flips: list[tuple[int, int]]) -> None:
    """A real WAV, truncated and with flipped bytes: audio up to the damage, or a clear error."""
    data = bytearray(_wav())
    for position, mask in flips:
        data[position] ^= mask
    total = 0
    try:
        for chunk in iter_file_audio(bytes(data[:cut])):
            _check_samples(chunk)
            total += chunk.size
    except AudioDecodeError:
        return
    assert total <= 16000 * 60  # never more audio than a damaged header could claim sanely


@given(text=st.text(max_size=300))
@FAST
def test_control_parser_takes_any_text(text: str) -> None:
    try:
        assert isinstance(parse_control(text), Control)
    except ControlError as exc:
        assert '{"type":"finalize"}' in str(exc) or "finalize" in str(exc)


@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )
)
@FAST
def test_control_parser_takes_any_json(payload: object) -> None:
    with contextlib.suppress(ControlError):
        parse_control(json.dumps(payload))


def test_control_parser_refuses_deep_nesting_clearly() -> None:
    with pytest.raises(ControlError, match="not JSON"):
        parse_control("[" * 100_000 + "]" * 100_000)
