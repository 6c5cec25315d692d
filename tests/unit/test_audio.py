"""`pulse_stt.audio`: streaming PCM/G.711 decoding and streaming resampling."""

from __future__ import annotations

import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import soxr

from pulse_stt.audio.decode import AudioDecodeError, make_decoder
from pulse_stt.audio.resample import StreamResampler
from pulse_stt.protocol import MODEL_RATE


def _chunks(data: bytes, sizes: list[int]) -> list[bytes]:
    out: list[bytes] = []
    pos = 0
    i = 0
    while pos < len(data):
        size = sizes[i % len(sizes)]
        out.append(data[pos : pos + size])
        pos += size
        i += 1
    return out


def _decode_stream(encoding: str, pieces: list[bytes]) -> np.ndarray:
    decoder = make_decoder(encoding, 16000)
    parts = [decoder.decode(p) for p in pieces]
    parts.append(decoder.flush())
    return np.concatenate(parts)


# -- linear16 / linear32 -------------------------------------------------------------------


def test_linear16_values() -> None:
    samples = np.array([0, 1, -1, 16384, -16384, 32767, -32768], dtype="<i2")
    out = make_decoder("linear16", 16000).decode(samples.tobytes())
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, samples.astype(np.float32) / 32768.0)
    assert out[-1] == -1.0
    assert 0.99996 < out[-2] < 1.0


@pytest.mark.parametrize("sizes", [[1], [3], [7, 1, 2], [1279, 1281], [5, 4096]])
def test_linear16_split_mid_sample_equals_whole(sizes: list[int]) -> None:
    rng = np.random.default_rng(1)
    data = rng.integers(-32768, 32767, size=3001, dtype=np.int16).astype("<i2").tobytes()
    whole = _decode_stream("linear16", [data])
    split = _decode_stream("linear16", _chunks(data, sizes))
    assert whole.size == 3001
    np.testing.assert_array_equal(split, whole)


def test_linear16_partial_sample_waits_for_rest() -> None:
    decoder = make_decoder("linear16", 16000)
    value = np.array([-12345], dtype="<i2").tobytes()
    assert decoder.decode(value[:1]).size == 0
    out = decoder.decode(value[1:])
    np.testing.assert_array_equal(out, np.array([-12345 / 32768.0], dtype=np.float32))


def test_linear16_trailing_half_sample_dropped_on_flush() -> None:
    decoder = make_decoder("linear16", 16000)
    assert decoder.decode(b"\x00\x40\x01").size == 1
    assert decoder.flush().size == 0
    # after flush nothing is pending any more: the next frame starts on a sample boundary
    out = decoder.decode(np.array([100], dtype="<i2").tobytes())
    np.testing.assert_array_equal(out, np.array([100 / 32768.0], dtype=np.float32))


def test_linear32_scaling() -> None:
    samples = np.array([0, 1 << 30, -(1 << 30), 2**31 - 1, -(2**31)], dtype="<i4")
    out = make_decoder("linear32", 16000).decode(samples.tobytes())
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.5, -0.5, 1.0, -1.0], atol=1e-7)
    assert out[-1] == -1.0


def test_linear32_split_mid_sample_equals_whole() -> None:
    rng = np.random.default_rng(2)
    data = rng.integers(-(2**31), 2**31 - 1, size=999, dtype=np.int32).astype("<i4").tobytes()
    whole = _decode_stream("linear32", [data])
    split = _decode_stream("linear32", _chunks(data, [3, 5, 1, 6]))
    assert whole.size == 999
    np.testing.assert_array_equal(split, whole)


def test_linear32_matches_linear16_for_same_signal() -> None:
    pcm16 = np.array([0, 1000, -1000, 32767, -32768], dtype="<i2")
    pcm32 = (pcm16.astype(np.int32) << 16).astype("<i4")
    a = make_decoder("linear16", 16000).decode(pcm16.tobytes())
    b = make_decoder("linear32", 16000).decode(pcm32.tobytes())
    np.testing.assert_array_equal(a, b)


def test_linear16_wav_header_skipped(
    librivox_files: list[Path], librivox_clips: list[np.ndarray]
) -> None:
    """Clients often send a .wav file's bytes: the header must not be played as audio."""
    wav_bytes = librivox_files[1].read_bytes()
    expected = librivox_clips[1].astype(np.float32) / 32768.0
    for sizes in ([len(wav_bytes)], [1], [3], [7, 1, 2], [44], [45], [1280]):
        out = _decode_stream("linear16", _chunks(wav_bytes, sizes))
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("sizes", [[1], [2], [5], [1000]])
def test_linear16_pcm_that_starts_like_riff_is_kept(sizes: list[int]) -> None:
    data = b"RIFX" + bytes(range(200)) + b"WAVE" + bytes(50)
    expected = np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0
    np.testing.assert_array_equal(_decode_stream("linear16", _chunks(data, sizes)), expected)


# -- G.711 ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def audioop() -> ModuleType:
    """The stdlib G.711 codec (deprecated, gone in 3.13): an independent reference."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop")


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_g711_table_matches_audioop(encoding: str, audioop: ModuleType) -> None:
    codes = bytes(range(256))
    expand = audioop.ulaw2lin if encoding == "mulaw" else audioop.alaw2lin
    expected = np.frombuffer(expand(codes, 2), dtype="<i2")
    out = make_decoder(encoding, 8000).decode(codes)
    assert out.dtype == np.float32
    assert out.size == 256
    np.testing.assert_array_equal(out * 32768.0, expected.astype(np.float32))


@pytest.mark.parametrize("encoding", ["mulaw", "alaw"])
def test_g711_silence_and_chunking(encoding: str) -> None:
    silence_code = {"mulaw": 0xFF, "alaw": 0xD5}[encoding]
    assert abs(make_decoder(encoding, 8000).decode(bytes([silence_code]))[0]) <= 8 / 32768
    rng = np.random.default_rng(3)
    data = rng.integers(0, 256, size=1000, dtype=np.uint8).tobytes()
    np.testing.assert_array_equal(
        _decode_stream(encoding, _chunks(data, [1, 2, 333])), _decode_stream(encoding, [data])
    )


def test_unknown_encoding() -> None:
    with pytest.raises(AudioDecodeError):
        make_decoder("flac", 16000)


@pytest.mark.parametrize("encoding", ["linear16", "linear32", "mulaw", "alaw"])
@pytest.mark.parametrize("rate", [8000, 16000, 48000])
def test_pcm_output_rate_is_the_declared_rate(encoding: str, rate: int) -> None:
    assert make_decoder(encoding, rate).output_rate == rate


@pytest.mark.parametrize("encoding", ["opus", "ogg_opus"])
def test_opus_decoders_exist_and_output_48k(encoding: str) -> None:
    decoder = make_decoder(encoding, 16000)  # Opus carries its own rate
    assert decoder.output_rate == 48000
    assert decoder.decode(b"").size == 0
    assert decoder.flush().size == 0


def test_ogg_opus_rejects_non_ogg_bytes() -> None:
    decoder = make_decoder("ogg_opus", 48000)
    with pytest.raises(AudioDecodeError):
        decoder.decode(b"RIFF" + bytes(100))


# -- resampling ----------------------------------------------------------------------------


def _stream_resample(signal: np.ndarray, rate: int, chunk: int) -> np.ndarray:
    resampler = StreamResampler(rate)
    parts = [resampler.process(signal[i : i + chunk]) for i in range(0, signal.size, chunk)]
    parts.append(resampler.flush())
    return np.concatenate(parts)


def _test_signal(rate: int, seconds: float) -> np.ndarray:
    rng = np.random.default_rng(rate)
    t = np.arange(int(rate * seconds)) / rate
    tone = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)
    return tone.astype(np.float32)


@pytest.mark.parametrize("rate", [48000, 8000, 44100, 22050])
@pytest.mark.parametrize("chunk", [160, 1234, 4800])
def test_streaming_resample_equals_whole_signal(rate: int, chunk: int) -> None:
    signal = _test_signal(rate, 1.5)
    expected = soxr.resample(signal, rate, MODEL_RATE, quality="HQ")
    out = _stream_resample(signal, rate, chunk)
    assert out.dtype == np.float32
    assert out.size == expected.size == round(1.5 * MODEL_RATE)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_resample_keeps_a_tone_at_its_frequency() -> None:
    out = _stream_resample(_test_signal(48000, 1.0), 48000, 1000)
    spectrum = np.abs(np.fft.rfft(out))
    freqs = np.fft.rfftfreq(out.size, 1 / MODEL_RATE)
    assert abs(freqs[int(np.argmax(spectrum))] - 440) < 2


def test_passthrough_at_model_rate() -> None:
    resampler = StreamResampler(16000)
    signal = _test_signal(16000, 0.1)
    out = resampler.process(signal)
    np.testing.assert_array_equal(out, signal)
    flushed = resampler.flush()
    assert flushed.size == 0
    assert flushed.dtype == np.float32
