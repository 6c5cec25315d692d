"""`/ready` and `/metrics` of the ASGI app, on a stand-in server context (no model)."""

from __future__ import annotations

from types import SimpleNamespace

from prometheus_client.parser import text_string_to_metric_families
from starlette.testclient import TestClient

from pulse_stt.api.app import create_app
from pulse_stt.config import Settings
from pulse_stt.ops.metrics import ServerMetrics


class _Reachable:
    def __init__(self, reachable: bool) -> None:
        self._reachable = reachable

    async def reachable(self) -> bool:
        return self._reachable


def client(*, ready: bool, metrics_enabled: bool = True, store_up: bool = True) -> TestClient:
    ctx = SimpleNamespace(
        settings=Settings(metrics_enabled=metrics_enabled, data_dir="/nonexistent"),
        engine=SimpleNamespace(model_dir="/models/whisper-base"),
        metrics=ServerMetrics(),
        ready=ready,
        store_guard=_Reachable(store_up),
    )
    return TestClient(create_app(ctx))  # type: ignore[arg-type]


def test_ready_answers_503_until_the_engine_takes_work() -> None:
    assert client(ready=False).get("/ready").status_code == 503
    answer = client(ready=True).get("/ready")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "model": "whisper-base"}


def test_ready_answers_503_while_the_store_is_unreachable() -> None:
    answer = client(ready=True, store_up=False).get("/ready")
    assert answer.status_code == 503
    assert answer.json() == {"status": "not_ready", "store": "unreachable"}


def test_metrics_are_served_unless_turned_off() -> None:
    served = client(ready=True).get("/metrics")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/plain; version=")
    names = {f.name for f in text_string_to_metric_families(served.text)}
    assert "pulse_stt_active_sessions" in names
    assert client(ready=True, metrics_enabled=False).get("/metrics").status_code == 404
