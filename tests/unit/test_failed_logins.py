"""Failed logins (issue 20, row 9): counted by reason, charged to their source address,
and refused unchecked (429 + Retry-After) after a burst, on every way in: REST, the
WebSocket handshake and its probe, and `POST /v1/tokens`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from pulse_stt.api.auth import AuthRefusal, FailedLogins, authorize, client_source
from pulse_stt.api.tokens import mint_token_endpoint
from pulse_stt.ops.metrics import ServerMetrics
from pulse_stt.store.db import Store
from pulse_stt.store.outage import StoreGuard
from tests.support.prometheus import parse_samples, value


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_try_per_refill() -> None:
    clock = FakeClock()
    seen: list[str] = []
    guard = FailedLogins(3, 6, count=seen.append, clock=clock)  # one try every 10 s
    for _ in range(3):
        assert guard.check("198.51.100.7") is None
        guard.failed("198.51.100.7", "header")
    refusal = guard.check("198.51.100.7")
    assert refusal is not None
    assert refusal.response.status_code == 429
    assert refusal.response.headers["retry-after"] == "10"
    assert guard.check("203.0.113.9") is None  # other sources are not affected
    clock.now += 9.5
    assert guard.retry_after("198.51.100.7") == pytest.approx(0.5)
    clock.now += 0.5
    assert guard.check("198.51.100.7") is None  # one more try...
    guard.failed("198.51.100.7", "header")
    assert guard.check("198.51.100.7") is not None  # ...and refused again
    clock.now += 3600
    assert guard.retry_after("198.51.100.7") == 0  # refilled, to the burst only
    assert seen == ["invalid"] * 3 + ["throttled", "invalid", "throttled"]


def test_memory_is_bounded_and_off_means_off() -> None:
    guard = FailedLogins(2, 1, max_sources=100)
    for i in range(1000):
        guard.failed(f"10.0.{i // 256}.{i % 256}", "header")
    assert len(guard) == 100
    off = FailedLogins(0, 1)
    for _ in range(1000):
        off.failed("10.0.0.1", "header")
    assert off.check("10.0.0.1") is None and len(off) == 0


@pytest.mark.parametrize(
    ("host", "source"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff::9", "2001:db8:1:2::/64"),  # same /64, same budget
        ("::ffff:198.51.100.7", "198.51.100.7"),
        ("testclient", "testclient"),
    ],
)
def test_sources(host: str, source: str) -> None:
    scope = {"type": "http", "client": (host, 1234), "headers": [], "query_string": b""}
    assert client_source(Request(scope)) == source


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{tmp_path / 'k.db'}")
    yield s
    s.close()


@pytest.fixture
def app(store: Store) -> Starlette:
    async def protected(request: Request) -> JSONResponse:
        key = await authorize(request.app.state.ctx, request)  # as REST and handshakes do
        if isinstance(key, AuthRefusal):
            return key.response
        return JSONResponse({"key": key.name})

    app = Starlette(
        routes=[
            Route("/v1/tokens", mint_token_endpoint, methods=["POST"]),
            Route("/protected", protected, methods=["GET"]),
        ]
    )
    metrics = ServerMetrics()
    app.state.ctx = SimpleNamespace(
        store=store,
        settings=SimpleNamespace(token_ttl_s=120),
        metrics=metrics,
        failed_logins=FailedLogins(4, 1, count=metrics.auth_failure),
        store_guard=StoreGuard(store, timeout_s=2.0),
    )
    return app


def test_every_way_in_spends_one_budget_then_even_the_right_key_waits(
    app: Starlette, store: Store
) -> None:
    _, secret = store.create_key("alice")
    wrong = {"Authorization": "Bearer pstt_wrong_0123456789abcdefghij"}
    with TestClient(app) as client:
        assert client.get("/protected").status_code == 401  # missing: counted, not charged
        assert client.post("/v1/tokens").status_code == 401
        assert client.get("/protected", headers={"Authorization": f"Bearer {secret}"}).json() == {
            "key": "alice"
        }
        answers = [
            client.get("/protected", headers=wrong),
            client.post("/v1/tokens", headers=wrong),
            client.get("/protected", headers={"Authorization": "Bearer " + "x" * 600}),
            client.post("/v1/tokens", headers=wrong),
        ]
        assert [a.status_code for a in answers] == [401] * 4
        for path, method in (("/protected", "GET"), ("/v1/tokens", "POST")):
            refused = client.request(method, path, headers={"Authorization": f"Bearer {secret}"})
            assert refused.status_code == 429
            assert refused.json()["error"] == "auth_throttled"
            assert int(refused.headers["retry-after"]) == 60
    samples = parse_samples(app.state.ctx.metrics.render()[0].decode())
    assert value(samples, "pulse_stt_auth_failures_total", reason="missing") == 2
    assert value(samples, "pulse_stt_auth_failures_total", reason="invalid") == 4
    assert value(samples, "pulse_stt_auth_failures_total", reason="throttled") == 2


def test_the_throttling_is_logged_once_with_the_source_and_no_secret(
    caplog: pytest.LogCaptureFixture,
) -> None:
    guard = FailedLogins(3, 6)
    with caplog.at_level("INFO", logger="pulse_stt.api.auth"):
        for _ in range(6):
            if guard.check("198.51.100.7") is None:
                guard.failed("198.51.100.7", "query")
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "198.51.100.7" in warnings[0] and "429" in warnings[0]
    assert sum("authentication failed" in r.getMessage() for r in caplog.records) == 3
