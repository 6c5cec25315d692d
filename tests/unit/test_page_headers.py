"""What unauthenticated answers give away (issue 20 row 11): the page's
Content-Security-Policy is the same whatever the request says, and `/ready` names the
model without its filesystem path."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from starlette.testclient import TestClient

from pulse_stt.api.app import create_app
from pulse_stt.config import Settings
from pulse_stt.ops.metrics import ServerMetrics

EXPECTED_POLICY = (
    "default-src 'self'; connect-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'; object-src 'none'"
)


class ReachableStore:
    async def reachable(self) -> bool:
        return True


def client(model_dir: str = "/srv/models/whisper-base") -> TestClient:
    ctx = SimpleNamespace(
        settings=Settings(data_dir="/nonexistent"),
        engine=SimpleNamespace(model_dir=model_dir),
        metrics=ServerMetrics(),
        ready=True,
        store_guard=ReachableStore(),
    )
    return TestClient(create_app(ctx))  # type: ignore[arg-type]


def directives(policy: str) -> list[str]:
    return [d.strip().split()[0] for d in policy.split(";") if d.strip()]


@pytest.mark.parametrize(
    "host",
    [
        "localhost:8000",
        "x; script-src https://evil.example",
        "x;script-src 'unsafe-inline'",
        "evil.example",
        "x, default-src *",
        "",
    ],
)
def test_the_page_policy_does_not_depend_on_the_host_header(host: str) -> None:
    answer = client().get("/", headers={"Host": host})
    assert answer.status_code == 200
    policy = answer.headers["content-security-policy"]
    assert policy == EXPECTED_POLICY
    assert "evil" not in policy and "unsafe" not in policy
    assert directives(policy).count("script-src") == 0
    assert len(directives(policy)) == len(set(directives(policy)))


@pytest.mark.parametrize(
    ("model_dir", "shown"),
    [
        ("/srv/models/whisper-base", "whisper-base"),
        (
            "/home/op/.cache/pulse-stt/models/Systran--faster-whisper-small/",
            "Systran--faster-whisper-small",
        ),
        ("C:\\models\\whisper-tiny", "whisper-tiny"),
    ],
)
def test_ready_names_the_model_without_its_path(model_dir: str, shown: str) -> None:
    answer = client(model_dir).get("/ready")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ready", "model": shown}
    assert "/" not in answer.text.replace("\\/", "") and "\\" not in answer.text
