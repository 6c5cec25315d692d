"""Shared fixtures for the unit tests: the LibriVox recordings from pocketsphinx-testdata."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")
RATE = 16_000


def librivox_paths() -> list[Path]:
    return sorted(LIBRIVOX.glob("*.wav"))


def read_wav_int16(path: Path) -> np.ndarray:
    """The raw 16-bit samples of a mono 16 kHz WAV file (what the clips are)."""
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 1
        assert w.getsampwidth() == 2
        assert w.getframerate() == RATE
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()


@pytest.fixture(scope="session")
def librivox_files() -> list[Path]:
    """The five LibriVox WAV files, in file-name order (skips when not installed)."""
    paths = librivox_paths()
    if len(paths) < 5:
        pytest.skip(f"LibriVox test recordings not found in {LIBRIVOX} (pocketsphinx-testdata)")
    return paths


@pytest.fixture(scope="session")
def librivox_clips(librivox_files: list[Path]) -> list[np.ndarray]:
    """The five LibriVox clips as int16 arrays at 16 kHz, in file-name order."""
    return [read_wav_int16(p) for p in librivox_files]
