"""Authentication for every endpoint: an API key, or a short-lived browser token.

Programs send `Authorization: Bearer <key>` (a browser token works there too). Browsers
cannot set headers on a WebSocket, so the WebSocket also takes a token minted by
`POST /v1/tokens` as the query parameter `token=<token>`, or as the subprotocol
`bearer.<token>` offered together with `pulse-stt`; the server then answers `pulse-stt`
(a browser fails the handshake unless the server picks one of the offered subprotocols,
and echoing the secret would put it in one more header). Only tokens travel those ways:
a long-lived key in a URL would end up in proxy logs.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection

from pulse_stt.protocol import ErrorKind
from pulse_stt.store.db import TOKEN_PREFIX, ApiKey, Store

SUBPROTOCOL = "pulse-stt"
TOKEN_SUBPROTOCOL_PREFIX = "bearer."
TOKEN_QUERY_PARAM = "token"
_MAX_SECRET_CHARS = 512


@dataclass(frozen=True)
class Credential:
    secret: str
    source: Literal["header", "query", "subprotocol"]


def bearer_token(headers: Headers) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def offered_subprotocols(conn: HTTPConnection) -> list[str]:
    return list(conn.scope.get("subprotocols") or [])


def presented_credential(conn: HTTPConnection) -> Credential | None:
    """What the client sent to prove who it is; the header wins over the browser ways."""
    header = bearer_token(conn.headers)
    if header is not None:
        return Credential(header, "header")
    if conn.scope["type"] != "websocket":
        return None
    query = conn.query_params.get(TOKEN_QUERY_PARAM, "").strip()
    if query:
        return Credential(query, "query")
    offered = offered_subprotocols(conn)
    if SUBPROTOCOL in offered:
        for protocol in offered:
            if protocol.startswith(TOKEN_SUBPROTOCOL_PREFIX):
                return Credential(protocol.removeprefix(TOKEN_SUBPROTOCOL_PREFIX), "subprotocol")
    return None


def accepted_subprotocol(conn: HTTPConnection) -> str | None:
    """The subprotocol to answer when accepting a WebSocket: ours if offered, never a token."""
    return SUBPROTOCOL if SUBPROTOCOL in offered_subprotocols(conn) else None


def _lookup(store: Store, credential: Credential) -> ApiKey | None:
    if credential.source == "header":
        key = store.authenticate(credential.secret)
        if key is not None or not credential.secret.startswith(TOKEN_PREFIX):
            return key
    # Only tokens may travel in a URL or a subprotocol.
    return store.authenticate_token(credential.secret)


async def authenticate(store: Store, conn: HTTPConnection) -> ApiKey | None:
    """The key a request or WebSocket acts for (a token acts for the key that minted it)."""
    credential = presented_credential(conn)
    if credential is None or not credential.secret or len(credential.secret) > _MAX_SECRET_CHARS:
        return None
    return await asyncio.to_thread(_lookup, store, credential)


UNAUTHORIZED_BODY = {
    "status": "error",
    "error": ErrorKind.UNAUTHORIZED,
    "message": "missing, invalid or expired credentials; send the header "
    "'Authorization: Bearer <key>'. Browsers: mint a short-lived token with POST /v1/tokens "
    "and pass it on the WebSocket as the query parameter 'token=<token>' or as the "
    f"subprotocols '{SUBPROTOCOL}' and '{TOKEN_SUBPROTOCOL_PREFIX}<token>'.",
}
