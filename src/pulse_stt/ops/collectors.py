"""Prometheus collectors of our own: figures read from their sources at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector


class WorkerRestarts(Collector):
    """`pulse_stt_decode_worker_restarts_total{model}`: decode worker threads that died (and
    were replaced at once), counted by the scheduler and read at scrape time."""

    def __init__(self) -> None:
        self._sources: dict[str, Callable[[], int]] = {}

    def watch(self, model: str, restarts: Callable[[], int]) -> None:
        self._sources[model] = restarts

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily(
            "pulse_stt_decode_worker_restarts",
            "Decode worker threads that died and were replaced, by model. A dead worker "
            "fails the jobs it held (those sessions get engine_error) and a new one takes "
            "its place.",
            labels=["model"],
        )
        for model, restarts in self._sources.items():
            family.add_metric([model], restarts())
        yield family
