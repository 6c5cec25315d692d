"""Bearer-key authentication for every endpoint."""

from __future__ import annotations

import asyncio

from starlette.datastructures import Headers

from pulse_stt.store.db import ApiKey, Store


def bearer_token(headers: Headers) -> str | None:
    value = headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


async def authenticate(store: Store, headers: Headers) -> ApiKey | None:
    token = bearer_token(headers)
    if token is None or len(token) > 512:
        return None
    return await asyncio.to_thread(store.authenticate, token)


UNAUTHORIZED_BODY = {
    "status": "error",
    "error": "unauthorized",
    "message": "missing or invalid API key; send the header 'Authorization: Bearer <key>'.",
}
