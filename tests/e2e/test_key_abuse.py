"""Against the real server (issue 20, rows 1 and 9): a revoked key stays revoked, with its
tokens, when the server restarts with it as PULSE_STT_API_KEY; wrong credentials are
counted and, after a burst from one address, refused with 429 before they are checked.

Each test starts its own servers on its own data folder: the session server's budget of
failed logins is not spent here.
"""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.client import LIVE
from tests.support.prometheus import parse_samples, value
from tests.support.server import API_KEY, Server, running_server

pytestmark = pytest.mark.e2e

QUERY = "model=pulse&language=en"


def _keys(server: Server, *args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "pulse_stt", "keys", *args],
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_a_revoked_key_and_its_tokens_stay_dead_after_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with running_server(data_dir) as first:
        minted = httpx.post(f"{first.http}/v1/tokens", headers=first.headers(), timeout=10)
        token = minted.json()["token"]
        assert minted.status_code == 200
        key_id = next(
            line.split()[0] for line in _keys(first, "list").splitlines() if "API_KEY" in line
        )
        _keys(first, "revoke", key_id)

    with running_server(data_dir) as second:  # PULSE_STT_API_KEY is the revoked key
        probe = f"{second.http}{LIVE}?{QUERY}"
        assert httpx.get(probe, headers=second.headers(), timeout=10).status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}
        assert httpx.get(probe, headers=bearer, timeout=10).status_code == 401
        minted = httpx.post(f"{second.http}/v1/tokens", headers=second.headers(), timeout=10)
        assert minted.status_code == 401
        log = second.log.read_text()
        assert "revoked" in log and "NOT accepted" in log and f"keys enable {key_id}" in log
        assert API_KEY not in log

        _keys(second, "enable", key_id)  # the operator's explicit decision
        assert httpx.get(probe, headers=second.headers(), timeout=10).status_code == 426
        assert httpx.get(probe, headers=bearer, timeout=10).status_code == 401  # still dead
    db = data_dir / "pulse-stt.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    assert API_KEY[5:15] not in _keys(first, "list")  # the hint gives nothing away


def test_a_burst_of_wrong_keys_is_counted_then_throttled(tmp_path: Path) -> None:
    burst = 5
    with running_server(
        tmp_path, auth_failure_burst=str(burst), auth_failures_per_minute="6", log_level="info"
    ) as server:
        wrong = {"Authorization": "Bearer pstt_wrong_0123456789abcdefghij"}
        rest = f"{server.http}/waves/v1/stt?model=pulse"
        probe = f"{server.http}{LIVE}?{QUERY}"
        tokens = f"{server.http}/v1/tokens"
        answers = []
        with httpx.Client(timeout=10) as client:
            # REST, the handshake probe and /v1/tokens all spend the same budget.
            for i in range(burst):
                if i % 3 == 0:
                    answers.append(client.post(rest, headers=wrong, content=b"x"))
                elif i % 3 == 1:
                    answers.append(client.get(probe, headers=wrong))
                else:
                    answers.append(client.post(tokens, headers=wrong))
            assert [a.status_code for a in answers] == [401] * burst
            for attempt in (
                client.post(rest, headers=wrong, content=b"x"),
                client.get(probe, headers=wrong),
                client.post(tokens, headers=wrong),
                # Once throttled, even the right key is not looked at from this address.
                client.get(probe, headers=server.headers()),
            ):
                assert attempt.status_code == 429, attempt.text
                assert 1 <= int(attempt.headers["retry-after"]) <= 10
                assert attempt.json()["error"] == "auth_throttled"
            metrics = parse_samples(client.get(f"{server.http}/metrics").text)
        assert value(metrics, "pulse_stt_auth_failures_total", reason="invalid") == burst
        assert value(metrics, "pulse_stt_auth_failures_total", reason="throttled") == 4
        lines = [json.loads(line) for line in server.log.read_text().splitlines() if "{" in line]
        messages = [line.get("message", "") for line in lines]
        throttled = [m for m in messages if "failed authentications in a burst" in m]
        assert len(throttled) == 1 and throttled[0].startswith("127.0.0.1:"), messages
        failed = [m for m in messages if m.startswith("authentication failed from 127.0.0.1")]
        assert len(failed) == burst
        assert "pstt_wrong" not in server.log.read_text()
