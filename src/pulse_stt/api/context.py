"""What a running server holds: settings, the engine, the store and a DSP thread pool."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pulse_stt.api.admission import Admission
from pulse_stt.api.auth import FailedLogins
from pulse_stt.api.bodies import UploadBudget
from pulse_stt.api.drain import SessionDrain
from pulse_stt.api.params import ParamError
from pulse_stt.api.webhook import WebhookJobs
from pulse_stt.config import Settings
from pulse_stt.engine.engine import Engine
from pulse_stt.ops.metrics import ServerMetrics
from pulse_stt.speakers.encoder import VoiceEncoder
from pulse_stt.speakers.weights import SpeakerWeightsError
from pulse_stt.store.db import Store
from pulse_stt.store.outage import StoreGuard, UsageRecorder, connect_args
from pulse_stt.text.itn import NemoInverseNormalizer

log = logging.getLogger(__name__)


def _warm(itn: NemoInverseNormalizer, language: str) -> None:
    try:
        itn.warm(language)
    except Exception as exc:  # finals then go out without ITN; the server keeps serving
        log.warning("could not prepare the ITN grammar for %s: %s", language, exc)


@dataclass
class ServerContext:
    settings: Settings
    engine: Engine
    store: Store
    itn: NemoInverseNormalizer
    pro_engine: Engine | None = None  # None: pulse-pro runs on `engine`, exactly as pulse
    speaker_encoder: VoiceEncoder | None = None  # None: diarize=true is refused (see below)
    speaker_problem: str = ""  # why there is no speaker encoder
    metrics: ServerMetrics = field(default_factory=ServerMetrics)  # this server's registry
    drain: SessionDrain = field(default_factory=SessionDrain)  # live sessions; shutting down?
    webhooks: WebhookJobs = field(default_factory=WebhookJobs)  # Pulse Pro jobs in flight
    # Decoding, resampling and VAD of incoming frames: light but not free, so off the loop.
    dsp_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="dsp")
    )
    # Speaker embeddings: kept apart from the DSP pool so frames are never queued behind them.
    speaker_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="speakers")
    )
    # Who may start a session now: per-key and per-server limits, load (api/admission.py).
    admission: Admission = field(init=False)
    # Store calls with a deadline; outages become 503s and /ready 503 (store/outage.py).
    store_guard: StoreGuard = field(init=False)
    # Failed authentications per source address: counted, throttled after a burst.
    failed_logins: FailedLogins = field(init=False)
    # Usage written now, or queued while the store is unreachable.
    usage: UsageRecorder = field(init=False)
    # Bytes of REST audio held at once, in memory or temporary files (api/bodies.py).
    uploads: UploadBudget = field(init=False)

    def __post_init__(self) -> None:
        self.admission = Admission.from_settings(self.settings, self.metrics.admission_refused)
        self.uploads = UploadBudget(self.settings.max_upload_bytes_in_flight)
        self.store_guard = StoreGuard(
            self.store,
            timeout_s=self.settings.store_timeout_s,
            on_failure=self.metrics.store_failure,
        )
        self.usage = UsageRecorder(
            self.store_guard,
            max_queued=self.settings.usage_queue_max,
            on_lost=self.metrics.usage_lost.inc,
        )
        self.metrics.watch_usage_queue(lambda: len(self.usage))
        self.failed_logins = FailedLogins(
            self.settings.auth_failure_burst,
            self.settings.auth_failures_per_minute,
            count=self.metrics.auth_failure,
        )

    @classmethod
    def create(cls, settings: Settings) -> ServerContext:
        url = settings.resolved_database_url()
        store = Store(url, connect_args=connect_args(url, settings.store_timeout_s))
        metrics = ServerMetrics()
        engine = _watched_engine(settings, None, "pulse", metrics)
        pro_engine = None
        if settings.pro_model and settings.pro_model != settings.model:
            pro_engine = _watched_engine(settings, settings.pro_model, "pulse-pro", metrics)
        itn = NemoInverseNormalizer(settings.cache_dir / "itn")
        # Compile (first start) or load the English grammar now, not on the first final.
        threading.Thread(target=_warm, args=(itn, "en"), name="itn-warm", daemon=True).start()
        encoder, problem = None, ""
        try:
            encoder = VoiceEncoder(settings.speaker_weights)
        except SpeakerWeightsError as exc:  # the server still transcribes; diarize is refused
            problem = str(exc)
            log.warning("diarization unavailable: %s", problem)
        return cls(settings, engine, store, itn, pro_engine, encoder, problem, metrics=metrics)

    def check_diarize(self, diarize: bool) -> None:
        """Refuse diarize=true at the edge when the speaker encoder could not be loaded."""
        if diarize and self.speaker_encoder is None:
            raise ParamError(
                "diarize",
                f"diarize=true is not available on this server: {self.speaker_problem}",
                "false",
            )

    def check_channels(self, channels: int) -> None:
        """Refuse a stream of more channels than this server takes (`max_channels`)."""
        limit = self.settings.max_channels
        if channels > limit:
            raise ParamError(
                "channels",
                f"channels={channels} is more than this server takes on one stream "
                f"(max_channels = {limit}); send at most {limit} interleaved channels, or "
                "open one stream per group of channels.",
                f"1..{limit}",
            )

    @property
    def ready(self) -> bool:
        """Every model is loaded (before the server listens) and its workers take work;
        false once shutdown has begun."""
        if self.drain.draining:
            return False
        return self.engine.ready and (self.pro_engine is None or self.pro_engine.ready)

    def engine_for(self, pro: bool) -> Engine:
        return self.pro_engine if pro and self.pro_engine else self.engine

    def close(self) -> None:
        self.engine.close()
        if self.pro_engine:
            self.pro_engine.close()
        self.dsp_pool.shutdown(wait=False, cancel_futures=True)
        self.speaker_pool.shutdown(wait=False, cancel_futures=True)
        self.usage.close()  # a last chance for usage queued during an outage
        self.store.close()


def _watched_engine(
    settings: Settings, model: str | None, label: str, metrics: ServerMetrics
) -> Engine:
    """An engine whose passes, queue, workers and final wait `/metrics` reports as `label`."""
    engine = Engine(settings, model, pass_observer=metrics.observe_pass)
    metrics.watch_queue(label, engine.queue_depths)
    metrics.watch_workers(label, engine.worker_restarts)
    metrics.watch_final_wait(label, engine.oldest_final_wait)
    return engine
