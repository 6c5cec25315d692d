"""The engine: one model per process, shared by every session through the scheduler."""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future

from pulse_stt.config import Settings
from pulse_stt.engine.model_store import resolve_model_dir
from pulse_stt.engine.scheduler import DecodeScheduler, PassObserver, QueueDepth
from pulse_stt.engine.transcriber import WhisperTranscriber, WindowPolicy
from pulse_stt.engine.types import DecodeJob, Hypothesis

log = logging.getLogger(__name__)


class Engine:
    def __init__(
        self,
        settings: Settings,
        model: str | None = None,
        *,
        pass_observer: PassObserver | None = None,
    ) -> None:
        model_dir = resolve_model_dir(model or settings.model, settings.cache_dir)
        cores = os.cpu_count() or 1
        workers = settings.decode_workers or (1 if settings.device == "cuda" else cores)
        threads = settings.cpu_threads or max(1, cores // workers)
        log.info(
            "loading model %s on %s (%s), %d decode worker(s) x %d thread(s)",
            model_dir,
            settings.device,
            settings.compute_type,
            workers,
            threads,
        )
        self.transcriber = WhisperTranscriber(
            model_dir,
            device=settings.device,
            compute_type=settings.compute_type,
            cpu_threads=threads,
            workers=workers,
            windows=WindowPolicy(
                final_min_s=settings.min_window_s,
                partial_min_s=min(settings.min_window_s, settings.partial_min_window_s),
            ),
        )
        self.model_dir = model_dir
        self.scheduler = DecodeScheduler(
            self.transcriber.decode,
            decode_batch=self.transcriber.decode_batch,
            batch_key=self.transcriber.batch_key,
            max_batch=settings.max_batch,
            workers=workers,
            observer=pass_observer,
        )

    def submit(self, job: DecodeJob) -> Future[Hypothesis | None]:
        return self.scheduler.submit(job)

    def submit_many(self, jobs: list[DecodeJob]) -> list[Future[Hypothesis | None]]:
        """Whole-file passes queued at once, to be decoded as one batch."""
        return self.scheduler.submit_many(jobs)

    def promote(self, future: Future[Hypothesis | None]) -> None:
        self.scheduler.promote(future)

    def cancel_session(self, session_id: str) -> None:
        self.scheduler.cancel_session(session_id)

    @property
    def ready(self) -> bool:
        """The model is loaded (it is, once constructed) and the decode workers take work."""
        return self.scheduler.running

    def queue_depths(self) -> QueueDepth:
        return self.scheduler.queue_depths()

    def oldest_final_wait(self) -> float:
        """Seconds the oldest queued live final has waited for a worker (0: none waits)."""
        return self.scheduler.oldest_final_wait()

    def worker_restarts(self) -> int:
        """Decode workers that died and were replaced since start."""
        return self.scheduler.worker_restarts

    def close(self) -> None:
        self.scheduler.close()
