"""What a running server holds: settings, the engine, the store and a DSP thread pool."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from pulse_stt.config import Settings
from pulse_stt.engine.engine import Engine
from pulse_stt.store.db import Store


@dataclass
class ServerContext:
    settings: Settings
    engine: Engine
    store: Store
    # Decoding, resampling and VAD of incoming frames: light but not free, so off the loop.
    dsp_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=2, thread_name_prefix="dsp")
    )

    @classmethod
    def create(cls, settings: Settings) -> ServerContext:
        store = Store(settings.resolved_database_url())
        return cls(settings=settings, engine=Engine(settings), store=store)

    def close(self) -> None:
        self.engine.close()
        self.dsp_pool.shutdown(wait=False, cancel_futures=True)
        self.store.close()
