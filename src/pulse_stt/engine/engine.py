"""The engine: one model per process, shared by every session through the scheduler."""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future

from pulse_stt.config import Settings
from pulse_stt.engine.model_store import resolve_model_dir
from pulse_stt.engine.scheduler import DecodeScheduler
from pulse_stt.engine.transcriber import WhisperTranscriber, WindowPolicy
from pulse_stt.engine.types import DecodeJob, Hypothesis

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, settings: Settings, model: str | None = None) -> None:
        model_dir = resolve_model_dir(model or settings.model, settings.cache_dir)
        threads = settings.cpu_threads or (os.cpu_count() or 1)
        log.info("loading model %s on %s (%s)", model_dir, settings.device, settings.compute_type)
        self.transcriber = WhisperTranscriber(
            model_dir,
            device=settings.device,
            compute_type=settings.compute_type,
            cpu_threads=threads,
            windows=WindowPolicy(min_window_s=settings.min_window_s),
        )
        self.model_dir = model_dir
        self.scheduler = DecodeScheduler(
            self.transcriber.decode,
            decode_batch=self.transcriber.decode_batch,
            batch_key=self.transcriber.batch_key,
            max_batch=settings.max_batch,
        )

    def submit(self, job: DecodeJob) -> Future[Hypothesis | None]:
        return self.scheduler.submit(job)

    def cancel_session(self, session_id: str) -> None:
        self.scheduler.cancel_session(session_id)

    def close(self) -> None:
        self.scheduler.close()
