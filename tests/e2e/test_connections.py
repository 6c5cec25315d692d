"""Connections that never authenticate are dropped by `pulse-stt serve` itself (issue 20
row 5): a silent connection and one sending its headers a byte at a time are closed at the
header deadline; an authenticated WebSocket session is not."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect as ws_connect

from pulse_stt.config import Settings
from tests.support.server import Server, running_server
from tests.support.sockets import closed_after, is_open

HEADER_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir: Path = tmp_path_factory.mktemp("connections")
    with running_server(data_dir, header_timeout_s=str(HEADER_TIMEOUT_S)) as running:
        yield running
    log = running.log.read_text()
    problems = [line for line in log.splitlines() if "ERROR" in line or "Traceback" in line]
    assert not problems, "server logged errors:\n" + log[-5000:]


def test_a_silent_connection_is_closed(strict_server: Server) -> None:
    with socket.create_connection((strict_server.host, strict_server.port)) as sock:
        closed = closed_after(sock, HEADER_TIMEOUT_S + 8)
        assert closed is not None, "a connection that sent nothing stayed open"
        assert closed < HEADER_TIMEOUT_S + 3


def test_a_slow_header_connection_is_closed(strict_server: Server) -> None:
    request = f"GET /waves/v1/stt/live HTTP/1.1\r\nHost: {strict_server.host}\r\nX-Pad: "
    trickle = request.encode() + b"a" * 200
    with socket.create_connection((strict_server.host, strict_server.port)) as sock:
        started = time.monotonic()
        for byte in trickle:
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            if not is_open(sock) or time.monotonic() - started > HEADER_TIMEOUT_S + 8:
                break
            time.sleep(0.1)
        assert not is_open(sock) or closed_after(sock, 0.5) is not None, (
            "headers sent a byte at a time kept the connection open"
        )
        assert time.monotonic() - started < HEADER_TIMEOUT_S + 3


def test_an_authenticated_session_outlives_the_header_deadline(strict_server: Server) -> None:
    query = "model=pulse&language=en&sample_rate=16000&encoding=linear16"
    url = f"{strict_server.ws}/waves/v1/stt/live?{query}"
    with ws_connect(url, additional_headers=strict_server.headers()) as ws:
        time.sleep(HEADER_TIMEOUT_S + 1)
        ws.send(bytes(3200))  # 100 ms of silence
        ws.send(json.dumps({"type": "close_stream"}))
        last = {}
        while not last.get("is_last"):
            last = json.loads(ws.recv(timeout=30))
        assert last["is_last"] is True


def test_drops_are_logged(strict_server: Server) -> None:
    assert "connections dropped: " in strict_server.log.read_text()


def test_the_defaults_listen_on_loopback_and_drop_silent_connections() -> None:
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert defaults.host == "127.0.0.1"
    assert defaults.header_timeout_s <= 30
    assert defaults.max_connections >= 1
