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
