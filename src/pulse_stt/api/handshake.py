"""The checks before a WebSocket upgrade, shared by the streaming endpoint and the
browser page's handshake probe (api/browser.py)."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from pulse_stt.api.auth import AuthRefusal, authorize
from pulse_stt.api.context import ServerContext
from pulse_stt.api.drain import unavailable_response
from pulse_stt.api.params import ParamError, parse_stream_params
from pulse_stt.api.schemas import store_unavailable_response
from pulse_stt.protocol import ErrorKind, StreamParams
from pulse_stt.store.db import ApiKey
from pulse_stt.store.outage import StoreUnavailableError

LEGACY_PATH = "/waves/v1/pulse/get_text"
LIVE_PATH = "/waves/v1/stt/live"


@dataclass(frozen=True)
class HandshakeDenial:
    """Why a WebSocket handshake is refused before the upgrade."""

    response: JSONResponse
    error: ErrorKind  # the kind `pulse_stt_errors_total` counts


def is_legacy_path(conn: HTTPConnection) -> bool:
    return conn.url.path.rstrip("/") == LEGACY_PATH


async def check_handshake(
    ctx: ServerContext, conn: HTTPConnection
) -> tuple[ApiKey, StreamParams] | HandshakeDenial:
    """The checks before a WebSocket upgrade, in order: draining, credentials (503 while
    the store is unreachable), parameters.
    Shared with the browser page's handshake probe (api/browser.py)."""
    if ctx.drain.draining:  # shutting down: no new sessions
        return HandshakeDenial(unavailable_response(), ErrorKind.UNAVAILABLE)
    try:
        key = await authorize(ctx, conn)  # failed logins counted and throttled per source
    except StoreUnavailableError:  # a dependency outage: 503 + Retry-After, before the upgrade
        return HandshakeDenial(store_unavailable_response(), ErrorKind.STORE_UNAVAILABLE)
    if isinstance(key, AuthRefusal):
        return HandshakeDenial(key.response, key.error)
    try:
        params = parse_stream_params(conn.query_params, legacy_path=is_legacy_path(conn))
        ctx.check_diarize(params.text.diarize)
        ctx.check_channels(params.channels)
    except ParamError as exc:
        return HandshakeDenial(
            JSONResponse(exc.to_json(), status_code=400), ErrorKind.INVALID_PARAMETER
        )
    return key, params
