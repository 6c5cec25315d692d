"""Against the real server: REST `{"url": ...}` cannot be pointed at internal addresses in
any of their spellings (tests/unit/test_fetch_guard.py covers DNS names and redirects
with a fake resolver), and the key never reaches the server's log."""

from __future__ import annotations

import httpx
import pytest

from tests.support.server import Server

pytestmark = pytest.mark.e2e

INTERNAL_URLS = (
    "http://10.0.0.5/a.wav",
    "http://192.168.1.1/a.wav",
    "http://127.1/a.wav",
    "http://2130706433/a.wav",  # 127.0.0.1 as one number
    "http://0.0.0.0/a.wav",
    "http://[::ffff:127.0.0.1]/a.wav",
    "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/",  # NAT64 of 169.254.169.254
    "http://localhost:8000/a.wav",  # a name that resolves to loopback
)


def test_url_bodies_cannot_reach_internal_addresses(server: Server) -> None:
    for url in INTERNAL_URLS:
        response = httpx.post(
            f"{server.http}/waves/v1/stt?model=pulse",
            json={"url": url},
            headers=server.headers(),
            timeout=30,
        )
        assert response.status_code == 400, url
        body = response.json()
        assert body["error"] == "bad_request" and "non-public address" in body["message"], url
        assert "request body instead" in body["message"]  # says what to send instead
    assert server.key not in server.log.read_text()
