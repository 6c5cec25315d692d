"""Real recordings for end-to-end tests (pocketsphinx-testdata's LibriVox clips) and helpers."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
from faster_whisper.audio import decode_audio

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
RATE = 16_000


@dataclass(frozen=True)
class Clip:
    name: str
    audio: np.ndarray  # float32 mono 16 kHz
    text: str


def librivox_clips() -> list[Clip]:
    refs: dict[str, str] = {}
    for line in (LIBRIVOX / "transcription").read_text().splitlines():
        m = re.match(r"<s>(.*)</s>\s*\((.*)\)", line.strip())
        if m:
            refs[m.group(2)] = m.group(1).strip()
    return [
        Clip(name, decode_audio(str(LIBRIVOX / f"{name}.wav"), sampling_rate=RATE), refs[name])
        for name in sorted(refs)
    ]


def silence(seconds: float, rate: int = RATE) -> np.ndarray:
    return np.zeros(int(seconds * rate), dtype=np.float32)


def join(*parts: np.ndarray) -> np.ndarray:
    return np.concatenate(parts).astype(np.float32)


def pcm16(audio: np.ndarray) -> bytes:
    return (np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes()


def sox_resample(audio: np.ndarray, rate: int, tmp: Path) -> np.ndarray:
    """Resample with the sox command-line tool (an independent, real converter)."""
    src, dst = tmp / "in.raw", tmp / f"out{rate}.raw"
    src.write_bytes(pcm16(audio))
    fmt = ["-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1"]
    subprocess.run(
        ["sox", *fmt, "-r", str(RATE), str(src), *fmt, "-r", str(rate), str(dst)], check=True
    )
    return np.frombuffer(dst.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0


def sox_synth(args: list[str], seconds: float, tmp: Path) -> np.ndarray:
    """Non-speech from sox's synthesizer (noise, tones, chords)."""
    dst = tmp / "synth.raw"
    subprocess.run(
        [
            "sox",
            "-n",
            "-t",
            "raw",
            "-e",
            "signed-integer",
            "-b",
            "16",
            "-c",
            "1",
            "-r",
            str(RATE),
            str(dst),
            "synth",
            str(seconds),
            *args,
        ],
        check=True,
    )
    return np.frombuffer(dst.read_bytes(), dtype="<i2").astype(np.float32) / 32768.0


_NORMALIZE = jiwer.Compose(
    [
        jiwer.ToLowerCase(),
        jiwer.SubstituteRegexes({r"[-–—]": " ", r"\bmr\b\.?": "mister", r"\bmrs\b\.?": "missus"}),
        jiwer.RemovePunctuation(),
        jiwer.RemoveMultipleSpaces(),
        jiwer.Strip(),
        jiwer.ReduceToListOfListOfWords(),
    ]
)


def wer(reference: str, hypothesis: str) -> float:
    return float(
        jiwer.wer(
            reference,
            hypothesis,
            reference_transform=_NORMALIZE,
            hypothesis_transform=_NORMALIZE,
        )
    )


def sox_encode(audio: np.ndarray, rate: int, encoding: str, bits: int, tmp: Path) -> bytes:
    """Headerless audio in a telephony/PCM encoding, written by sox from 16 kHz audio."""
    src, dst = tmp / "src.raw", tmp / f"out-{encoding}-{bits}-{rate}.raw"
    src.write_bytes(pcm16(audio))
    fmt = ["-t", "raw", "-c", "1"]
    subprocess.run(
        [
            "sox",
            *fmt,
            "-e",
            "signed-integer",
            "-b",
            "16",
            "-r",
            str(RATE),
            str(src),
            *fmt,
            "-e",
            encoding,
            "-b",
            str(bits),
            "-r",
            str(rate),
            str(dst),
        ],
        check=True,
    )
    return dst.read_bytes()


def opusenc_ogg(audio: np.ndarray, rate: int, tmp: Path) -> bytes:
    """An Ogg/Opus stream written by the reference encoder (opus-tools' opusenc)."""
    wav, dst = tmp / f"in{rate}.wav", tmp / f"out{rate}.opus"
    write_wav(sox_resample(audio, rate, tmp) if rate != RATE else audio, rate, wav)
    subprocess.run(["opusenc", "--quiet", "--bitrate", "24", str(wav), str(dst)], check=True)
    return dst.read_bytes()


def write_wav(audio: np.ndarray, rate: int, path: Path) -> None:
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm16(audio))


def opus_packets(audio: np.ndarray, rate: int) -> list[bytes]:
    """Raw Opus packets (20 ms) from FFmpeg's libopus encoder, fed audio at `rate`."""
    import av

    samples = sox_resample_inline(audio, rate)
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = rate
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = 24000
    encoder.open()
    frame_size = rate // 50
    packets: list[bytes] = []
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    for start in range(0, pcm.size - frame_size + 1, frame_size):
        frame = av.AudioFrame.from_ndarray(
            pcm[None, start : start + frame_size], format="s16", layout="mono"
        )
        frame.sample_rate = rate
        frame.pts = start
        packets += [bytes(p) for p in encoder.encode(frame)]
    packets += [bytes(p) for p in encoder.encode(None)]
    return packets


def sox_resample_inline(audio: np.ndarray, rate: int) -> np.ndarray:
    import soxr

    return audio if rate == RATE else soxr.resample(audio, RATE, rate).astype(np.float32)


def encode_file(
    audio: np.ndarray, fmt: str, codec: str, rate: int = RATE, channels: int = 1
) -> bytes:
    """A whole file in a container, written by FFmpeg's muxers/encoders through PyAV."""
    import io

    import av

    samples = sox_resample_inline(audio, rate)
    layout = "stereo" if channels == 2 else "mono"
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=fmt) as container:
        stream = container.add_stream(codec, rate=rate, layout=layout)
        pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        planar = np.repeat(pcm[None, :], channels, axis=0) if channels == 2 else pcm[None, :]
        frame = av.AudioFrame.from_ndarray(
            planar.T.reshape(1, -1).copy() if channels == 2 else planar, format="s16", layout=layout
        )
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def espeak(text: str, tmp: Path, voice: str = "en-us", speed: int = 150) -> np.ndarray:
    """A phrase spoken by espeak-ng, as 16 kHz float32."""
    path = tmp / f"espeak-{abs(hash((text, voice, speed)))}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(path), text], check=True)
    return decode_audio(str(path), sampling_rate=RATE)
