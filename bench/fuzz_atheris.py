"""Coverage-guided fuzzing (atheris, libFuzzer's engine) of everything that parses input.

The first byte of each input picks a target, the rest is its input:

- `control`: a WebSocket text frame through `parse_control`;
- `stream_params` / `file_params`: a query string through `parse_stream_params` (live and
  legacy path) and `parse_file_params`;
- `decoder`: frames in one of the six encodings through its stream decoder (the Ogg/Opus
  backlog drained as the server drains it); samples must be finite, within [-1, 1], and
  no more than a bounded piece per call;
- `session`: the same frames through a whole `StreamSession` (decoder, resampler, VAD,
  endpointer), then finalize and close;
- `file`: a whole REST body through `iter_file_audio` (FFmpeg's demuxers and decoders),
  with the server's default limit on decoded audio.

Anything but the documented error (ControlError, ParamError, AudioDecodeError) is a crash,
and so is an input that runs past `-timeout` seconds or `-rss_limit_mb`. The corpus starts
from real inputs (LibriVox audio in every encoding and container, real control messages
and query strings) written to `--corpus`. Crashing inputs land in `--artifacts`.

    .venv/bin/python -m pip install -e '.[fuzz]'
    .venv/bin/python bench/fuzz_atheris.py --seconds 120
    .venv/bin/python bench/fuzz_atheris.py --seconds 600 --corpus /tmp/pstt-corpus -- -jobs=2
    .venv/bin/python bench/fuzz_atheris.py --reproduce crash-1234abcd   # one input, verbose

Not part of the test suite: it runs for as long as it is given and never passes or fails
anything but itself (exit code 0 when nothing was found within the time).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
import tempfile
import wave
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qsl

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import atheris  # after numpy and av: only our own code is instrumented

with atheris.instrument_imports(include=["pulse_stt"]):
    from pulse_stt.api.control import ControlError, parse_control
    from pulse_stt.api.params import (
        ENCODINGS,
        ParamError,
        parse_file_params,
        parse_stream_params,
    )
    from pulse_stt.audio.container import iter_file_audio
    from pulse_stt.audio.decode import AudioDecodeError, make_decoder
    from pulse_stt.audio.opus import MAX_DECODE_SAMPLES
    from pulse_stt.config import Settings
    from pulse_stt.stream.session import SessionConfig, StreamSession, UtteranceAudio

# Only after the block: it imports pulse_stt.audio, which must not load uninstrumented.
from tests.support.hostile_inputs import PAGE_SAMPLES, check_samples, drain

TARGETS = ("control", "stream_params", "file_params", "decoder", "session", "file")
RATES = (8000, 16000, 22050, 24000, 44100, 48000)
MAX_FILE_AUDIO_S = Settings.model_fields["max_file_audio_s"].default
# One call of a decoder returns at most this (Ogg/Opus: its bound plus one page of 30.6 s;
# PCM: a frame of mu-law at most, which the fuzzer's inputs never exceed).
MAX_PIECE = MAX_DECODE_SAMPLES + PAGE_SAMPLES


def _check_samples(samples: np.ndarray) -> None:
    check_samples(samples, max_size=MAX_PIECE)


def _frames(fdp: atheris.FuzzedDataProvider) -> tuple[str, int, list[bytes]]:
    """An encoding, a declared rate, and the rest of the input cut into frames."""
    encoding = fdp.PickValueInList(list(ENCODINGS))
    rate = fdp.PickValueInList(list(RATES))
    size = 16 * fdp.ConsumeIntInRange(1, 255)
    data = fdp.ConsumeBytes(atheris.ALL_REMAINING)
    return encoding, rate, [data[i : i + size] for i in range(0, len(data), size)]


def fuzz_control(data: bytes) -> None:
    try:
        parse_control(data.decode("utf-8", "replace"))
    except ControlError as exc:
        if "finalize" not in str(exc):
            raise AssertionError(f"an error that does not say what to send: {exc}") from None


def _query(data: bytes) -> dict[str, str]:
    return dict(parse_qsl(data.decode("utf-8", "replace"), keep_blank_values=True))


def fuzz_stream_params(data: bytes) -> None:
    for legacy in (False, True):
        try:
            parse_stream_params(_query(data), legacy_path=legacy)
        except ParamError as exc:
            if not exc.to_json().get("message"):
                raise AssertionError("a ParamError without a message") from None


def fuzz_file_params(data: bytes) -> None:
    for legacy in (False, True):
        try:
            parse_file_params(_query(data), legacy_path=legacy)
        except ParamError as exc:
            if not exc.to_json().get("message"):
                raise AssertionError("a ParamError without a message") from None


def fuzz_decoder(data: bytes) -> None:
    encoding, rate, frames = _frames(atheris.FuzzedDataProvider(data))
    decoder = make_decoder(encoding, rate)
    for frame in frames:
        _, _, errors = drain(decoder, frame, check=_check_samples, max_calls=10_000)
        if not all(errors):
            raise AssertionError("an AudioDecodeError without a message")
    with contextlib.suppress(AudioDecodeError):
        _check_samples(decoder.flush())


def fuzz_session(data: bytes) -> None:
    encoding, rate, frames = _frames(atheris.FuzzedDataProvider(data))
    session = StreamSession(SessionConfig(encoding=encoding, sample_rate=rate))
    actions = []
    for frame in frames:
        chunk = frame
        while True:
            with contextlib.suppress(AudioDecodeError):
                actions += session.feed(chunk)
            if not session.has_pending_audio:
                break
            chunk = b""
    actions += session.finalize()
    actions += session.close()
    finals = [a for a in actions if isinstance(a, UtteranceAudio) and a.is_final]
    if not finals or not finals[-1].is_last or sum(a.from_finalize for a in finals) != 1:
        raise AssertionError("finalize and close did not give exactly their finals")


def fuzz_file(data: bytes) -> None:
    try:
        for chunk in iter_file_audio(data, max_seconds=MAX_FILE_AUDIO_S):
            if not np.isfinite(chunk).all():
                raise AssertionError("file audio not finite")
    except AudioDecodeError as exc:
        if not str(exc):
            raise AssertionError("an AudioDecodeError without a message") from None


FUZZERS: dict[str, Callable[[bytes], None]] = {
    "control": fuzz_control,
    "stream_params": fuzz_stream_params,
    "file_params": fuzz_file_params,
    "decoder": fuzz_decoder,
    "session": fuzz_session,
    "file": fuzz_file,
}


def make_one_input(targets: tuple[str, ...]) -> Callable[[bytes], None]:
    def test_one_input(data: bytes) -> None:
        if not data:
            return
        FUZZERS[targets[data[0] % len(targets)]](data[1:])

    return test_one_input


# -- seeds -------------------------------------------------------------------------------


def _speech() -> np.ndarray:
    """Two seconds of a real recording (LibriVox, pocketsphinx-testdata) or, without it, a
    tone with pauses."""
    path = Path(
        "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav"
    )
    if path.exists():
        with wave.open(str(path)) as w:
            pcm = np.frombuffer(w.readframes(32000), dtype="<i2")
        return pcm.astype(np.float32) / 32768
    t = np.arange(32000) / 16000
    return (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * t) > 0)).astype(np.float32)


def _container(audio: np.ndarray, fmt: str, codec: str, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    with av.open(out, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout="mono")
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)[None, :]
        if rate != 16000:
            import soxr

            pcm = (soxr.resample(audio, 16000, rate) * 32767).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return out.getvalue()


def seeds(targets: tuple[str, ...]) -> list[bytes]:
    audio = _speech()[:16000]
    pcm16 = (audio * 32767).astype("<i2").tobytes()
    pcm32 = (audio.astype(np.float64) * 2**31 * 0.99).astype("<i4").tobytes()
    ogg = _container(audio, "ogg", "libopus", 48000)
    opus_packet = ogg[ogg.rindex(b"OggS") :][28:120]  # about one packet of the last page
    per_encoding = {
        "linear16": _container(audio, "wav", "pcm_s16le"),
        "linear32": pcm32,
        "alaw": _container(audio, "wav", "pcm_alaw")[44:],
        "mulaw": _container(audio, "wav", "pcm_mulaw")[44:],
        "opus": opus_packet,
        "ogg_opus": ogg,
    }
    by_target: dict[str, list[bytes]] = {
        "control": [
            b'{"type":"finalize"}',
            b'{"type":"close_stream"}',
            b'{"type":"end"}',
            b'{"type":"keepalive"}',
            b'{"type":"bogus"}',
            b"[1,2]",
        ],
        "stream_params": [
            b"model=pulse&language=en&encoding=linear16&sample_rate=16000",
            b"model=pulse&language=multi-eu&keywords=Kubernetes:6,gRPC:3&max_words=5"
            b"&eou_timeout_ms=500&external_session_id=a.b-c&vad=true&diarize=false",
            b"model=pulse&endpointing=true&endpointing_timeout=300&vad_threshold=0.4"
            b"&vad_min_speech_ms=50",
        ],
        "file_params": [b"model=pulse-pro&language=fr&word_timestamps=true&redact_pci=true"],
        "decoder": [bytes([i, 1, 20]) + per_encoding[e] for i, e in enumerate(ENCODINGS)],
        "session": [bytes([i, 1, 40]) + per_encoding[e] for i, e in enumerate(ENCODINGS)],
        "file": [
            _container(audio, "wav", "pcm_s16le"),
            _container(audio, "flac", "flac"),
            _container(audio, "mp3", "libmp3lame", 44100),
            ogg,
            pcm16[:2000],
        ],
    }
    return [
        bytes([index]) + seed for index, target in enumerate(targets) for seed in by_target[target]
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=120, help="total fuzzing time")
    parser.add_argument("--targets", nargs="+", choices=TARGETS, default=list(TARGETS))
    parser.add_argument("--corpus", type=Path, help="corpus folder (kept; default: temporary)")
    parser.add_argument("--artifacts", type=Path, default=Path("."), help="crash inputs go here")
    parser.add_argument("--reproduce", type=Path, help="run one saved input and show its error")
    args, libfuzzer = parser.parse_known_args()
    logging.disable(logging.WARNING)  # "audio ends early" on every damaged file
    targets = tuple(args.targets)
    one_input = make_one_input(targets)
    if args.reproduce:
        one_input(args.reproduce.read_bytes())
        print("no error")
        return
    with tempfile.TemporaryDirectory() as tmp:
        corpus = args.corpus or Path(tmp)
        corpus.mkdir(parents=True, exist_ok=True)
        for index, seed in enumerate(seeds(targets)):
            (corpus / f"seed-{index:03d}").write_bytes(seed)
        args.artifacts.mkdir(parents=True, exist_ok=True)
        flags = [
            f"-max_total_time={args.seconds}",
            "-timeout=20",  # an input that runs longer is a hang
            "-rss_limit_mb=2048",
            "-max_len=65536",
            f"-artifact_prefix={args.artifacts.resolve()}/",
            "-print_final_stats=1",
            *[a for a in libfuzzer if a != "--"],
        ]
        atheris.Setup([sys.argv[0], *flags, str(corpus)], one_input)
        atheris.Fuzz()


if __name__ == "__main__":
    main()
