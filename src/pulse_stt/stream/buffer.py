"""A session's 16 kHz audio, addressed by absolute sample index since the first byte."""

from __future__ import annotations

import numpy as np


class SampleBuffer:
    """Append-only audio with a movable start; old audio is dropped once no turn needs it."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._start = 0  # absolute index of the first sample held
        self._size = 0

    @property
    def start(self) -> int:
        return self._start

    @property
    def end(self) -> int:
        return self._start + self._size

    def append(self, samples: np.ndarray) -> None:
        if samples.size:
            self._chunks.append(np.asarray(samples, dtype=np.float32))
            self._size += samples.size

    def _joined(self) -> np.ndarray:
        if len(self._chunks) != 1:
            joined = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.float32)
            self._chunks = [joined]
        return self._chunks[0]

    def slice(self, start: int, end: int) -> np.ndarray:
        """A copy of [start, end) clipped to what is held."""
        start = max(start, self._start)
        end = min(end, self.end)
        if end <= start:
            return np.zeros(0, dtype=np.float32)
        data = self._joined()
        return data[start - self._start : end - self._start].copy()

    def drop_before(self, index: int) -> None:
        """Forget audio before absolute sample `index`."""
        cut = min(index, self.end) - self._start
        if cut <= 0:
            return
        data = self._joined()
        self._chunks = [data[cut:].copy()] if cut < data.size else []
        self._start += cut
        self._size -= cut
