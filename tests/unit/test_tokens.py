"""Browser tokens: the store (`store.db`), how credentials are read (`api.auth`) and the
minting endpoint (`api.tokens`), against a real SQLite database."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from starlette.applications import Starlette
from starlette.requests import HTTPConnection
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

from pulse_stt.api.auth import (
    UNAUTHORIZED_BODY,
    Credential,
    FailedLogins,
    accepted_subprotocol,
    authenticate,
    presented_credential,
)
from pulse_stt.api.tokens import TokenRequestError, mint_token_endpoint, requested_ttl
from pulse_stt.ops.logs import RedactSecrets
from pulse_stt.store.db import TOKEN_PREFIX, Store
from pulse_stt.store.outage import StoreGuard
from tests.unit.fake_clock import FakeClock


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "tokens.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[Store]:
    s = Store(f"sqlite:///{db_path}")
    yield s
    s.close()


# ------------------------------------------------------------------------------- store


def test_minted_token_acts_for_its_key_and_is_not_a_key(store: Store) -> None:
    key, key_secret = store.create_key("alice")
    token = store.mint_token(key.id, 60)
    assert token.secret.startswith(TOKEN_PREFIX) and token.key_id == key.id
    assert 59 <= (token.expires_at - key.created_at).total_seconds() <= 61
    found = store.authenticate_token(token.secret)
    assert found is not None and found.id == key.id and found.name == "alice"
    assert store.authenticate(token.secret) is None  # a token is not a key...
    assert store.authenticate_token(key_secret) is None  # ...and a key is not a token
    assert store.authenticate_token(token.secret + "x") is None
    assert store.authenticate_token(TOKEN_PREFIX + "A" * 43) is None


def test_tokens_are_random_and_stored_only_as_digests(store: Store, db_path: Path) -> None:
    key, _ = store.create_key("alice")
    secrets = [store.mint_token(key.id, 60).secret for _ in range(5)]
    assert len(set(secrets)) == 5
    with sqlite3.connect(db_path) as db:
        rows = db.execute("SELECT digest, key_id FROM browser_tokens").fetchall()
        dump = "\n".join(db.iterdump())
    assert len(rows) == 5 and all(len(digest) == 64 and kid == key.id for digest, kid in rows)
    assert not any(secret in dump or secret[len(TOKEN_PREFIX) :] in dump for secret in secrets)


def test_expired_tokens_are_refused_and_purged(db_path: Path) -> None:
    clock = FakeClock()
    store = Store(f"sqlite:///{db_path}", clock=clock.utc)
    try:
        key, _ = store.create_key("alice")
        short = store.mint_token(key.id, 0.05)
        assert store.authenticate_token(short.secret) is not None
        clock.advance(0.1)
        assert store.authenticate_token(short.secret) is None
        store.mint_token(key.id, 60)  # minting clears out what has expired
        with sqlite3.connect(db_path) as db:
            assert db.execute("SELECT count(*) FROM browser_tokens").fetchone() == (1,)
    finally:
        store.close()


def test_revoking_the_key_ends_its_tokens(store: Store) -> None:
    key, _ = store.create_key("alice")
    other, _ = store.create_key("bob")
    token = store.mint_token(key.id, 60)
    other_token = store.mint_token(other.id, 60)
    assert store.revoke_key(key.id)
    assert store.authenticate_token(token.secret) is None
    assert store.authenticate_token(other_token.secret) is not None


def test_tokens_are_seen_by_another_store_on_the_same_database(db_path: Path) -> None:
    # Two server processes sharing one database: one mints, the other accepts.
    first, second = Store(f"sqlite:///{db_path}"), Store(f"sqlite:///{db_path}")
    try:
        key, _ = first.create_key("alice")
        token = first.mint_token(key.id, 60)
        found = second.authenticate_token(token.secret)
        assert found is not None and found.id == key.id
    finally:
        first.close()
        second.close()


# ------------------------------------------------------------------------ ttl parsing


@pytest.mark.parametrize(
    ("body", "ttl"),
    [
        (b"", 300),
        (b"  ", 300),
        (b"{}", 300),
        (b'{"ttl_s": 60}', 60),
        (b'{"ttl_s": 1.2}', 2),
        (b'{"ttl_s": 1}', 1),
        (b'{"ttl_s": 86400}', 300),  # capped by the server's token_ttl_s
    ],
)
def test_requested_ttl(body: bytes, ttl: int) -> None:
    assert requested_ttl(body, 300) == ttl


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b"ttl=60", "not JSON"),
        (b"[60]", "JSON object"),
        (b'{"ttl_s": "60"}', "number of seconds"),
        (b'{"ttl_s": true}', "number of seconds"),
        (b'{"ttl_s": 0}', "at least 1"),
        (b'{"ttl_s": -5}', "at least 1"),
        (b'{"ttl_s": NaN}', "number of seconds"),
        (b"\xff\xfe", "not JSON"),
        (b"[" * 4000, "not JSON"),  # nested deeper than Python's stack: was a 500
    ],
)
def test_bad_ttl_is_explained(body: bytes, says: str) -> None:
    with pytest.raises(TokenRequestError, match=says):
        requested_ttl(body, 300)


# ---------------------------------------------------------------- reading credentials


def _connection(
    kind: str,
    *,
    query: str = "",
    authorization: str | None = None,
    subprotocols: list[str] | None = None,
) -> HTTPConnection:
    headers = [(b"authorization", authorization.encode())] if authorization else []
    scope = {
        "type": kind,
        "path": "/waves/v1/stt/live",
        "query_string": query.encode(),
        "headers": headers,
        "subprotocols": subprotocols or [],
    }
    return HTTPConnection(scope)


def test_the_header_wins_then_the_query_then_the_subprotocol() -> None:
    both = _connection(
        "websocket",
        query="token=from-query",
        authorization="Bearer from-header",
        subprotocols=["pulse-stt", "bearer.from-subprotocol"],
    )
    assert presented_credential(both) == Credential("from-header", "header")
    no_header = _connection(
        "websocket", query="token=from-query", subprotocols=["pulse-stt", "bearer.x"]
    )
    assert presented_credential(no_header) == Credential("from-query", "query")
    only_subprotocol = _connection("websocket", subprotocols=["pulse-stt", "bearer.pstt_tok_ab"])
    assert presented_credential(only_subprotocol) == Credential("pstt_tok_ab", "subprotocol")


def test_subprotocol_token_needs_our_protocol_beside_it() -> None:
    # Without "pulse-stt" offered there is nothing safe to answer, and a browser would fail
    # the handshake; such a client gets the 401 that says what to offer.
    assert presented_credential(_connection("websocket", subprotocols=["bearer.t"])) is None
    assert accepted_subprotocol(_connection("websocket", subprotocols=["bearer.t"])) is None
    offered = _connection("websocket", subprotocols=["bearer.t", "pulse-stt"])
    assert accepted_subprotocol(offered) == "pulse-stt"  # never the token itself
    assert accepted_subprotocol(_connection("websocket")) is None


def test_rest_takes_only_the_header() -> None:
    assert presented_credential(_connection("http", query="token=abc")) is None
    header = _connection("http", authorization="Bearer abc")
    assert presented_credential(header) == Credential("abc", "header")
    assert presented_credential(_connection("http", authorization="Basic abc")) is None


def test_keys_never_travel_in_urls_or_subprotocols(store: Store) -> None:
    key, key_secret = store.create_key("alice")
    token = store.mint_token(key.id, 60).secret
    accepted = [
        _connection("websocket", authorization=f"Bearer {key_secret}"),
        _connection("websocket", authorization=f"Bearer {token}"),
        _connection("http", authorization=f"Bearer {token}"),
        _connection("websocket", query=f"model=pulse&token={token}"),
        _connection("websocket", subprotocols=["pulse-stt", f"bearer.{token}"]),
    ]
    for conn in accepted:
        found = asyncio.run(authenticate(store, conn))
        assert found is not None and found.id == key.id
    refused = [
        _connection("websocket", query=f"token={key_secret}"),
        _connection("websocket", subprotocols=["pulse-stt", f"bearer.{key_secret}"]),
        _connection("http", query=f"token={token}"),
        _connection("websocket", query="token=" + "x" * 600),
        _connection("websocket"),
    ]
    for conn in refused:
        assert asyncio.run(authenticate(store, conn)) is None


def test_unauthorized_message_says_what_to_send() -> None:
    message = UNAUTHORIZED_BODY["message"]
    for needed in ("Authorization: Bearer", "POST /v1/tokens", "token=", "pulse-stt", "bearer."):
        assert needed in message


def test_query_tokens_are_redacted_from_logs() -> None:
    record = logging.LogRecord(
        "uvicorn.error",
        logging.INFO,
        __file__,
        1,
        '%s - "WebSocket %s" [accepted]',
        ("127.0.0.1:5000", "/waves/v1/stt/live?model=pulse&token=pstt_tok_SECRET-_1&language=en"),
        None,
    )
    assert RedactSecrets().filter(record)  # the server's log handler masks every line
    assert record.getMessage() == (
        '127.0.0.1:5000 - "WebSocket /waves/v1/stt/live?model=pulse&token=[redacted]'
        '&language=en" [accepted]'
    )


# --------------------------------------------------------------------------- endpoint


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    async def echo_key(websocket: WebSocket) -> None:
        key = await authenticate(store, websocket)
        if key is None:
            await websocket.close(1008)
            return
        await websocket.accept(subprotocol=accepted_subprotocol(websocket))
        await websocket.send_json({"key": key.name})
        await websocket.close()

    app = Starlette(
        routes=[
            Route("/v1/tokens", mint_token_endpoint, methods=["POST"]),
            WebSocketRoute("/ws", echo_key),
        ]
    )
    app.state.ctx = SimpleNamespace(
        store=store,
        settings=SimpleNamespace(token_ttl_s=120),
        store_guard=StoreGuard(store, timeout_s=2.0),
        failed_logins=FailedLogins(30, 30),
    )
    with TestClient(app) as test_client:
        yield test_client


def test_endpoint_mints_with_a_key_only(client: TestClient, store: Store) -> None:
    _, key_secret = store.create_key("alice")
    response = client.post("/v1/tokens", headers={"Authorization": f"Bearer {key_secret}"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"].startswith(TOKEN_PREFIX)
    assert body["expires_in"] == 120 and body["expires_at"].endswith("Z")
    assert response.headers["cache-control"] == "no-store"

    again = client.post("/v1/tokens", headers={"Authorization": f"Bearer {body['token']}"})
    assert again.status_code == 403 and "cannot mint" in again.json()["message"]

    shorter = client.post(
        "/v1/tokens", headers={"Authorization": f"Bearer {key_secret}"}, json={"ttl_s": 30}
    )
    assert shorter.json()["expires_in"] == 30
    capped = client.post(
        "/v1/tokens", headers={"Authorization": f"Bearer {key_secret}"}, json={"ttl_s": 9999}
    )
    assert capped.json()["expires_in"] == 120

    bad = client.post(
        "/v1/tokens", headers={"Authorization": f"Bearer {key_secret}"}, json={"ttl_s": "soon"}
    )
    assert bad.status_code == 400 and bad.json()["param"] == "ttl_s"
    huge = client.post(
        "/v1/tokens", headers={"Authorization": f"Bearer {key_secret}"}, content=b" " * 5000
    )
    assert huge.status_code == 400 and "4096 bytes" in huge.json()["message"]
    nested = client.post(
        "/v1/tokens", headers={"Authorization": f"Bearer {key_secret}"}, content=b"[" * 4000
    )
    assert nested.status_code == 400 and "not JSON" in nested.json()["message"]

    for headers in ({}, {"Authorization": "Bearer pstt_nope"}, {"Authorization": "Basic x"}):
        refused = client.post("/v1/tokens", headers=headers)
        assert refused.status_code == 401
        assert "Authorization: Bearer <key>" in refused.json()["message"]


def test_websocket_answers_our_subprotocol_not_the_token(client: TestClient, store: Store) -> None:
    key, _ = store.create_key("alice")
    token = store.mint_token(key.id, 60).secret
    with client.websocket_connect("/ws", subprotocols=["pulse-stt", f"bearer.{token}"]) as ws:
        assert ws.accepted_subprotocol == "pulse-stt"
        assert ws.receive_json() == {"key": "alice"}
    with client.websocket_connect(f"/ws?token={token}") as ws:
        assert ws.accepted_subprotocol is None
        assert ws.receive_json() == {"key": "alice"}
