"""Streaming Silero VAD (v6, the ONNX model bundled with faster-whisper).

32 ms frames (512 samples at 16 kHz); the LSTM state and 64-sample context carry from one
frame to the next, so feeding audio in any chunking gives the same probabilities.
"""

from __future__ import annotations

import os
from functools import cache

import numpy as np
import onnxruntime
from faster_whisper.vad import get_assets_path

FRAME_SAMPLES = 512
_CONTEXT_SAMPLES = 64


@cache
def _shared_session() -> onnxruntime.InferenceSession:
    # The ONNX session is stateless (state is passed in and out), so one is shared.
    opts = onnxruntime.SessionOptions()
    opts.inter_op_num_threads = 1
    opts.intra_op_num_threads = 1
    opts.enable_cpu_mem_arena = False
    opts.log_severity_level = 4
    return onnxruntime.InferenceSession(
        os.path.join(get_assets_path(), "silero_vad_v6.onnx"),
        providers=["CPUExecutionProvider"],
        sess_options=opts,
    )


class StreamingVad:
    """Speech probability per 32 ms frame, for one stream."""

    def __init__(self) -> None:
        self._session = _shared_session()
        self._h = np.zeros((1, 1, 128), dtype=np.float32)
        self._c = np.zeros((1, 1, 128), dtype=np.float32)
        self._context = np.zeros(_CONTEXT_SAMPLES, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)

    def process(self, samples: np.ndarray) -> np.ndarray:
        """Probabilities for every whole frame completed by `samples`."""
        if self._pending.size:
            samples = np.concatenate([self._pending, samples])
        n_frames = samples.size // FRAME_SAMPLES
        self._pending = samples[n_frames * FRAME_SAMPLES :].copy()
        if n_frames == 0:
            return np.zeros(0, dtype=np.float32)
        frames = samples[: n_frames * FRAME_SAMPLES].reshape(n_frames, FRAME_SAMPLES)
        contexts = np.empty((n_frames, _CONTEXT_SAMPLES), dtype=np.float32)
        contexts[0] = self._context
        contexts[1:] = frames[:-1, -_CONTEXT_SAMPLES:]
        batch = np.concatenate([contexts, frames], axis=1).astype(np.float32, copy=False)
        probs, self._h, self._c = self._session.run(
            None, {"input": batch, "h": self._h, "c": self._c}
        )
        self._context = frames[-1, -_CONTEXT_SAMPLES:].copy()
        return np.asarray(probs, dtype=np.float32).reshape(-1)

    def flush(self) -> np.ndarray:
        """End of stream: zero-pad the last partial frame so its audio is judged too."""
        if not self._pending.size:
            return np.zeros(0, dtype=np.float32)
        pad = np.zeros(FRAME_SAMPLES - self._pending.size, dtype=np.float32)
        return self.process(pad)
