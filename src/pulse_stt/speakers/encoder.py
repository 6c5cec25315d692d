"""Speaker embeddings: Resemblyzer's GE2E voice encoder, run in numpy.

The network is small (a 3-layer LSTM over 40 mel bands, then a linear layer): 160 frames
of 10 ms (1.6 s) in, a 256-d L2-normalised embedding out. Its input is a *power* mel
spectrogram exactly as librosa computes it (25 ms Hann window, Slaney mel scale and
norm), so we reproduce that here; `tests/unit/test_speaker_encoder.py` checks the port
against embeddings produced by the original torch model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pulse_stt.protocol import MODEL_RATE
from pulse_stt.speakers.weights import (
    SpeakerWeightsError,
    bundled_weights_path,
    load_legacy_torch_checkpoint,
)

HOP = 160  # 10 ms
N_FFT = 400  # 25 ms
N_MELS = 40
WINDOW_FRAMES = 160  # the encoder's training window: 1.6 s
_TARGET_DBFS = -30.0  # Resemblyzer's volume normalisation (raise only)


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (librosa's default)."""
    f_sp = 200.0 / 3
    mels = hz / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_part = min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep
    return np.where(hz >= min_log_hz, log_part, mels)


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(
        mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels
    )


def mel_filterbank(sr: int = MODEL_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Triangular Slaney-normalised filters, shape (n_mels, n_fft // 2 + 1)."""
    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_points = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(sr / 2)), n_mels + 2)
    )
    fdiff = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2 : n_mels + 2] - mel_points[:n_mels]))[:, None]
    return weights.astype(np.float32)


@dataclass(frozen=True)
class _Lstm:
    w_ih: np.ndarray  # (in, 4H), transposed for x @ w
    w_hh: np.ndarray  # (H, 4H)
    bias: np.ndarray  # (4H,)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # overflow-free


class VoiceEncoder:
    """Thread-safe after construction (read-only weights)."""

    def __init__(self, weights: Path | None = None) -> None:
        path = weights or bundled_weights_path()
        if not path.is_file():
            raise SpeakerWeightsError(f"speaker-encoder weights not found at {path}")
        try:
            state = load_legacy_torch_checkpoint(path)["model_state"]
        except (KeyError, TypeError) as exc:
            raise SpeakerWeightsError(f"{path} does not hold a speaker encoder: {exc}") from exc
        self._layers = [
            _Lstm(
                np.ascontiguousarray(state[f"lstm.weight_ih_l{i}"].T),
                np.ascontiguousarray(state[f"lstm.weight_hh_l{i}"].T),
                state[f"lstm.bias_ih_l{i}"] + state[f"lstm.bias_hh_l{i}"],
            )
            for i in range(3)
        ]
        self._linear_w = np.ascontiguousarray(state["linear.weight"].T)
        self._linear_b = state["linear.bias"]
        self._mel = mel_filterbank()
        n = np.arange(N_FFT)
        self._window = (0.5 - 0.5 * np.cos(2 * np.pi * n / N_FFT)).astype(
            np.float32
        )  # periodic Hann

    @staticmethod
    def normalize_volume(audio: np.ndarray) -> np.ndarray:
        """Raise quiet speech to -30 dBFS, as the encoder was trained (never lowers)."""
        rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64)))) if audio.size else 0.0
        if rms <= 1e-6:
            return audio
        change = _TARGET_DBFS - 20 * np.log10(rms)
        return audio if change <= 0 else (audio * 10 ** (change / 20)).astype(np.float32)

    @staticmethod
    def frame_count(n_samples: int) -> int:
        return 1 + n_samples // HOP

    def mel_frames(self, audio: np.ndarray, first: int = 0, stop: int | None = None) -> np.ndarray:
        """Power mel spectrogram rows [first, stop), (frames, 40); frame i is centred on
        sample i * 160. Computing only the rows needed keeps live turns linear in time."""
        padded = np.pad(
            audio.astype(np.float32),
            N_FFT // 2,
            mode="reflect" if audio.size > N_FFT // 2 else "constant",
        )
        n_frames = self.frame_count(audio.size)
        stop = n_frames if stop is None else min(stop, n_frames)
        first = min(first, stop)
        frames = np.lib.stride_tricks.as_strided(
            padded[first * HOP :],
            shape=(stop - first, N_FFT),
            strides=(padded.strides[0] * HOP, padded.strides[0]),
        )
        spectrum = np.abs(np.fft.rfft(frames * self._window, axis=1)) ** 2
        return (spectrum.astype(np.float32) @ self._mel.T).astype(np.float32)

    def embed_mels(self, mels: np.ndarray) -> np.ndarray:
        """(batch, frames, 40) → (batch, 256) L2-normalised embeddings."""
        batch, steps, _ = mels.shape
        x = mels.astype(np.float32)
        h = np.zeros((batch, 256), np.float32)
        for layer in self._layers:
            projected = x @ layer.w_ih + layer.bias  # every step's input term at once
            h = np.zeros((batch, 256), np.float32)
            c = np.zeros((batch, 256), np.float32)
            outputs = np.empty((batch, steps, 256), np.float32)
            for t in range(steps):
                gates = projected[:, t] + h @ layer.w_hh
                i = _sigmoid(gates[:, :256])
                f = _sigmoid(gates[:, 256:512])
                g = np.tanh(gates[:, 512:768])
                o = _sigmoid(gates[:, 768:])
                c = f * c + i * g
                h = o * np.tanh(c)
                outputs[:, t] = h
            x = outputs
        raw = np.maximum(h @ self._linear_w + self._linear_b, 0.0)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return raw / np.maximum(norms, 1e-9)


WINDOW_HOP_FRAMES = 50  # a window every 0.5 s
MIN_WINDOW_FRAMES = 40  # shorter turns carry too little voice to place


@dataclass(frozen=True)
class TurnWindows:
    """Speaker embeddings of overlapping windows over one turn's audio."""

    offset: float  # seconds since the stream start of the turn's first sample
    duration: float  # seconds of audio in the turn
    starts: np.ndarray  # (n,) window starts, seconds since the stream start
    ends: np.ndarray  # (n,)
    embeddings: np.ndarray  # (n, 256), L2-normalised
    speech: np.ndarray  # (n,) share of each window's 10 ms frames that carry voice

    @property
    def centers(self) -> np.ndarray:
        return (self.starts + self.ends) / 2


def window_starts(n_frames: int) -> list[tuple[int, int]]:
    """[start, end) mel-frame ranges: 1.6 s windows every 0.5 s, the last flush with the end."""
    if n_frames < MIN_WINDOW_FRAMES:
        return []
    if n_frames <= WINDOW_FRAMES:
        return [(0, n_frames)]
    ranges = [
        (s, s + WINDOW_FRAMES) for s in range(0, n_frames - WINDOW_FRAMES + 1, WINDOW_HOP_FRAMES)
    ]
    if ranges[-1][1] < n_frames:
        ranges.append((n_frames - WINDOW_FRAMES, n_frames))
    return ranges


def voiced_share(frame_energy: np.ndarray) -> float:
    """Share of frames within 30 dB of the window's loud frames (and above -65 dBFS)."""
    if not frame_energy.size:
        return 0.0
    loud = float(np.percentile(frame_energy, 95))
    floor = max(loud * 1e-3, 10 ** (-65 / 10))
    return float(np.mean(frame_energy > floor))
