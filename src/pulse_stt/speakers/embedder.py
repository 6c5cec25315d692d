"""Turn audio → window embeddings, incrementally for live sessions.

A live turn is embedded a little at a time: every partial brings the windows that are now
complete, and they are kept, so the final only pays for the last one or two. Each window
is volume-normalised on its own (not with the whole turn) so that a cached window is
exactly what the final would compute again.
"""

from __future__ import annotations

import threading

import numpy as np

from pulse_stt.protocol import MODEL_RATE
from pulse_stt.speakers.encoder import (
    HOP,
    TurnWindows,
    VoiceEncoder,
    voiced_share,
    window_starts,
)

_TARGET_POWER = (10 ** (-30 / 20)) ** 2  # Resemblyzer trains on speech at -30 dBFS
_EDGE_FRAMES = 3  # frames whose mel depends on audio not yet received


class TurnEmbedder:
    """One per session (or file). Thread-safe; the encoder is shared."""

    def __init__(self, encoder: VoiceEncoder) -> None:
        self._encoder = encoder
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, int, int], tuple[np.ndarray, float]] = {}
        self._utterance = -1

    def embed(
        self, audio: np.ndarray, offset: float, *, utterance: int, final: bool
    ) -> TurnWindows:
        frame_power = np.square(audio[: audio.size // HOP * HOP].reshape(-1, HOP)).mean(axis=1)
        n_frames = min(self._encoder.frame_count(audio.size), len(frame_power))
        ranges = window_starts(n_frames)
        with self._lock:
            if utterance != self._utterance:  # a new turn: earlier windows are never reused
                self._cache.clear()
                self._utterance = utterance
            cached = dict(self._cache)
        todo = [r for r in ranges if (utterance, *r) not in cached]
        first = min((s for s, _ in todo), default=0)
        mels = self._encoder.mel_frames(audio, first, max((e for _, e in todo), default=0))
        fresh: dict[tuple[int, int, int], tuple[np.ndarray, float]] = {}
        by_length: dict[int, list[tuple[int, int]]] = {}
        for r in todo:
            by_length.setdefault(r[1] - r[0], []).append(r)
        for group in by_length.values():
            batch = []
            for start, end in group:
                power = float(frame_power[start:end].mean())
                gain = _TARGET_POWER / power if 0 < power < _TARGET_POWER else 1.0
                batch.append(mels[start - first : end - first] * gain)
            embeddings = self._encoder.embed_mels(np.stack(batch))
            for (start, end), embedding in zip(group, embeddings, strict=True):
                fresh[(utterance, start, end)] = (embedding, voiced_share(frame_power[start:end]))
        with self._lock:
            if self._utterance == utterance and not final:
                n_complete = n_frames - _EDGE_FRAMES
                self._cache.update({k: v for k, v in fresh.items() if k[2] <= n_complete})
            if final:
                self._cache.clear()
        results = {**cached, **fresh}
        rows = [results[(utterance, *r)] for r in ranges]
        seconds = HOP / MODEL_RATE
        return TurnWindows(
            offset=offset,
            duration=audio.size / MODEL_RATE,
            starts=np.array([offset + s * seconds for s, _ in ranges]),
            ends=np.array([offset + e * seconds for _, e in ranges]),
            embeddings=np.stack([r[0] for r in rows]) if rows else np.zeros((0, 256), np.float32),
            speech=np.array([r[1] for r in rows]),
        )
