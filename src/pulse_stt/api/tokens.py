"""`POST /v1/tokens`: trade an API key for a short-lived browser token.

A page must not hold a long-lived key in a URL, and browsers cannot set headers on a
WebSocket; so a backend (or the bundled page, with a key the user typed) mints a token
with its key and hands the token to the browser. The token acts for the key wherever a
key is accepted, until it expires or the key is revoked; it cannot mint tokens itself.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from pulse_stt.api.auth import UNAUTHORIZED_BODY, bearer_token, client_source
from pulse_stt.api.bodies import BodyTooLargeError, loads_json, read_body
from pulse_stt.api.context import ServerContext
from pulse_stt.api.schemas import store_unavailable_response
from pulse_stt.protocol import ErrorKind
from pulse_stt.store.db import TOKEN_PREFIX, ApiKey, BrowserToken, Store
from pulse_stt.store.outage import StoreUnavailableError

TOKENS_PATH = "/v1/tokens"
_MAX_BODY_BYTES = 4096

_MINT_UNAUTHORIZED = {
    **UNAUTHORIZED_BODY,
    "message": "missing or invalid API key; send the header 'Authorization: Bearer <key>' "
    "with an API key to mint a token.",
}
_TOKEN_CANNOT_MINT = {
    "status": "error",
    "error": ErrorKind.FORBIDDEN,
    "message": "a browser token cannot mint tokens; send 'Authorization: Bearer <key>' "
    "with an API key instead.",
}


class TokenRequestError(ValueError):
    pass


def requested_ttl(body: bytes, cap_s: int) -> int:
    """Seconds the token should live: `{"ttl_s": N}` if given (1..), never above `cap_s`."""
    if not body.strip():
        return cap_s
    try:
        data: Any = loads_json(body)
    except ValueError as exc:  # not JSON, not UTF-8, or nested too deeply
        raise TokenRequestError(
            'the body is not JSON; send nothing or {"ttl_s": <seconds>}.'
        ) from exc
    if not isinstance(data, dict):
        raise TokenRequestError('the body must be a JSON object such as {"ttl_s": 60}.')
    ttl = data.get("ttl_s", cap_s)
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl):
        raise TokenRequestError(f"ttl_s must be a number of seconds, got {ttl!r}.")
    if ttl < 1:
        raise TokenRequestError(f"ttl_s must be at least 1 second, got {ttl!r}.")
    return min(math.ceil(ttl), cap_s)


def _mint(store: Store, secret: str, ttl_s: int) -> BrowserToken | ApiKey | None:
    """A new token for the key `secret`; the token's own key if `secret` is a token
    (which may not mint); None if it is neither."""
    key = store.authenticate(secret)
    if key is not None:
        return store.mint_token(key.id, ttl_s)
    if secret.startswith(TOKEN_PREFIX):
        return store.authenticate_token(secret)
    return None


async def _small_body(request: Request) -> bytes:
    try:
        return await read_body(request, _MAX_BODY_BYTES)
    except BodyTooLargeError:
        raise TokenRequestError(
            f'the body is over {_MAX_BODY_BYTES} bytes; send {{"ttl_s": <seconds>}}.'
        ) from None


async def mint_token_endpoint(request: Request) -> JSONResponse:
    ctx: ServerContext = request.app.state.ctx
    # Failed logins here spend the same per-source budget as everywhere (api/auth.py).
    source = client_source(request)
    throttled = ctx.failed_logins.check(source)
    if throttled is not None:
        return throttled.response
    secret = bearer_token(request.headers)
    if secret is None:
        ctx.failed_logins.missing()
        return JSONResponse(_MINT_UNAUTHORIZED, status_code=401)
    if len(secret) > 512:
        ctx.failed_logins.failed(source, "header")
        return JSONResponse(_MINT_UNAUTHORIZED, status_code=401)
    try:
        ttl_s = requested_ttl(await _small_body(request), ctx.settings.token_ttl_s)
    except TokenRequestError as exc:
        return JSONResponse(
            {"status": "error", "param": "ttl_s", "message": str(exc)}, status_code=400
        )
    try:
        minted = await ctx.store_guard.call(
            "token", asyncio.to_thread(_mint, ctx.store, secret, ttl_s)
        )
    except StoreUnavailableError:
        return store_unavailable_response()
    if isinstance(minted, ApiKey):
        return JSONResponse(_TOKEN_CANNOT_MINT, status_code=403)
    if minted is None:
        ctx.failed_logins.failed(source, "header")
        return JSONResponse(_MINT_UNAUTHORIZED, status_code=401)
    return JSONResponse(
        {
            "token": minted.secret,
            "token_type": "Bearer",
            "expires_at": minted.expires_at.isoformat().replace("+00:00", "Z"),
            "expires_in": ttl_s,
        },
        headers={"Cache-Control": "no-store"},
    )
