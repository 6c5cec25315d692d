"""What a running server holds: settings, the engine, the store and a DSP thread pool."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pulse_stt.config import Settings
from pulse_stt.engine.engine import Engine
from pulse_stt.store.db import Store
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
    pro_engine: Engine | None = None  # None: pulse-pro runs on `engine` with pro options
    # Decoding, resampling and VAD of incoming frames: light but not free, so off the loop.
    dsp_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="dsp")
    )

    @classmethod
    def create(cls, settings: Settings) -> ServerContext:
        store = Store(settings.resolved_database_url())
        engine = Engine(settings)
        pro_engine = None
        if settings.pro_model and settings.pro_model != settings.model:
            pro_engine = Engine(settings, settings.pro_model)
        itn = NemoInverseNormalizer(settings.cache_dir / "itn")
        # Compile (first start) or load the English grammar now, not on the first final.
        threading.Thread(target=_warm, args=(itn, "en"), name="itn-warm", daemon=True).start()
        return cls(settings, engine, store, itn, pro_engine)

    def engine_for(self, pro: bool) -> Engine:
        return self.pro_engine if pro and self.pro_engine else self.engine

    def close(self) -> None:
        self.engine.close()
        if self.pro_engine:
            self.pro_engine.close()
        self.dsp_pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()
