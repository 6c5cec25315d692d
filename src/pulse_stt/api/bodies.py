"""Reading small request bodies and JSON from clients, the same way on every endpoint."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request


class BodyTooLargeError(Exception):
    """The body (declared or sent) is over the endpoint's limit."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused as soon as it is over `limit` bytes (by its Content-Length
    before any of it is read, or while it streams in)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyTooLargeError
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLargeError
    return bytes(body)


def loads_json(data: str | bytes) -> Any:
    """`json.loads`, with every way client JSON can be bad raised as ValueError: nesting
    deeper than Python's stack raises RecursionError, which is not one."""
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None
