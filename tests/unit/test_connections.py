"""api/connections.py on a real uvicorn server (a stand-in application, raw sockets):
connections that never complete a request are closed (issue 20 row 5)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from websockets.sync.client import connect as ws_connect

from pulse_stt.api.connections import guarded_protocol
from tests.support.sockets import closed_after, is_open

REQUEST = b"GET /ok HTTP/1.1\r\nHost: test\r\n\r\n"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        headers = [(b"content-length", b"2")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text") or ""})


@contextmanager
def serving(
    header_timeout_s: float = 0.5, max_waiting: int = 100, max_connections: int = 100
) -> Iterator[int]:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        http=guarded_protocol(
            header_timeout_s=header_timeout_s,
            max_waiting=max_waiting,
            max_connections=max_connections,
        ),
        ws="websockets-sansio",
        lifespan="off",
        log_config=None,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "server did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def open_socket(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def response(sock: socket.socket) -> bytes:
    answer = b""
    while not answer.endswith(b"\r\n\r\nok"):
        chunk = sock.recv(65536)
        assert chunk, f"closed after {answer!r}"
        answer += chunk
    return answer


def test_a_silent_connection_is_closed_at_the_header_deadline() -> None:
    with serving(header_timeout_s=0.5) as port, open_socket(port) as sock:
        closed = closed_after(sock, 5.0)
        assert closed is not None, "a connection that sent nothing stayed open"
        assert 0.3 < closed < 2.0


def test_headers_sent_a_byte_at_a_time_do_not_extend_the_deadline() -> None:
    with serving(header_timeout_s=0.5) as port, open_socket(port) as sock:
        started = time.monotonic()
        trickle = b"GET /ok HTTP/1.1\r\nHost: test\r\nX-Pad: " + b"a" * 1000
        closed = False
        for byte in trickle:
            try:
                sock.send(bytes([byte]))
            except OSError:
                closed = True
                break
            if not is_open(sock):
                closed = True
                break
            if time.monotonic() - started > 5:
                break
        assert closed, "a connection sending its headers a byte at a time stayed open"
        assert time.monotonic() - started < 2.0


def test_a_prompt_request_is_answered_and_its_next_one_is_due_in_time() -> None:
    with serving(header_timeout_s=0.5) as port, open_socket(port) as sock:
        time.sleep(0.3)  # within the deadline
        sock.sendall(REQUEST)
        assert response(sock).startswith(b"HTTP/1.1 200")
        time.sleep(0.3)  # kept alive: the deadline starts again at the response
        sock.sendall(REQUEST)
        assert response(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /ok HTTP/1.1\r\n")  # then a request that never completes
        closed = closed_after(sock, 5.0)
        assert closed is not None and closed < 2.0


def test_a_websocket_outlives_the_header_deadline() -> None:
    with serving(header_timeout_s=0.5) as port, ws_connect(f"ws://127.0.0.1:{port}/live") as ws:
        time.sleep(1.2)
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"


def test_over_the_waiting_cap_the_longest_waiting_connection_is_dropped() -> None:
    with serving(header_timeout_s=30, max_waiting=2) as port:
        first, second = open_socket(port), open_socket(port)
        time.sleep(0.2)
        third = open_socket(port)
        assert closed_after(first, 2.0) is not None, "the oldest waiting one was kept"
        assert is_open(second) and is_open(third)
        # A real client still gets in (it pushes out `second` while it sends its request).
        with open_socket(port) as client:
            client.sendall(REQUEST)
            assert response(client).startswith(b"HTTP/1.1 200")
        for sock in (first, second, third):
            sock.close()


def test_over_the_connection_cap_a_new_connection_is_closed_at_once() -> None:
    with serving(header_timeout_s=30, max_connections=2) as port:
        held = [open_socket(port), open_socket(port)]
        time.sleep(0.2)
        with open_socket(port) as extra:
            closed = closed_after(extra, 2.0)
            assert closed is not None and closed < 1.0
        assert all(is_open(sock) for sock in held)
        held[0].close()
        time.sleep(0.2)
        with open_socket(port) as client:  # a place is free again
            client.sendall(REQUEST)
            assert response(client).startswith(b"HTTP/1.1 200")
        held[1].close()


@pytest.mark.parametrize("limit", ["header_timeout_s", "max_waiting_connections"])
def test_the_limits_are_settings(limit: str) -> None:
    from pulse_stt.config import Settings

    assert limit in Settings.model_fields


def test_the_nginx_recipe_drops_slow_clients_and_caps_connections() -> None:
    conf = (Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf").read_text()
    directives = dict(
        line.split("#")[0].strip().rstrip(";").split(None, 1)
        for line in conf.splitlines()
        if line.split("#")[0].strip().count(" ") >= 1 and not line.strip().startswith("#")
    )
    assert int(directives["client_header_timeout"].removesuffix("s")) <= 30
    assert int(directives["keepalive_timeout"].removesuffix("s")) <= 30
    assert "client_body_timeout" in directives
    assert directives["limit_conn"].startswith("per_client ")
    assert "listen" in directives and directives["listen"].startswith("127.0.0.1:")
