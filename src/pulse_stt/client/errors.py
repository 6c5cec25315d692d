"""Typed errors of the client library.

Everything the client raises on purpose is a `PulseError`. An HTTP refusal (before a
WebSocket upgrade or as a REST response) keeps the server's status code and JSON body.
Errors *inside* an open stream are not raised: they arrive as `ServerError` messages,
because the session goes on after them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class PulseError(Exception):
    """Base of every error the client raises.

    `status_code` is the HTTP status when the server refused a request (None otherwise),
    `error` its short error code (e.g. "too_large"), `message` what it said, and `body`
    its JSON body as received.
    """

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error = error
        self.body: Mapping[str, Any] = body or {}


class AuthenticationError(PulseError):
    """HTTP 401: the key is missing, wrong or revoked."""


class ParameterError(PulseError, ValueError):
    """A parameter the server (HTTP 400) or the client itself refused.

    `param` names the parameter, `allowed` lists what may be sent instead when known.
    """

    def __init__(
        self,
        param: str,
        message: str,
        allowed: str | None = None,
        *,
        status_code: int | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, error="invalid_parameter", body=body)
        self.param = param
        self.allowed = allowed

    def __str__(self) -> str:
        allowed = f" (allowed: {self.allowed})" if self.allowed else ""
        return f"{self.param}: {self.message}{allowed}"


class PulseConnectionError(PulseError):
    """The server could not be reached, or the connection ended before the stream did."""


def error_from_response(status_code: int, body: bytes | str, *, url: str) -> PulseError:
    """The typed error for an HTTP refusal with the server's body (JSON or not)."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text) if text else {}
    except ValueError:
        data = {}
    if not isinstance(data, dict):
        data = {}
    message = str(data.get("message") or data.get("detail") or text.strip()[:300] or "")
    if not message:
        message = f"HTTP {status_code} from {url}"
    if status_code == 401:
        return AuthenticationError(
            message, status_code=401, error=str(data.get("error") or "unauthorized"), body=data
        )
    if status_code == 400 and data.get("param"):
        allowed = data.get("allowed")
        return ParameterError(
            str(data["param"]),
            message,
            str(allowed) if allowed else None,
            status_code=400,
            body=data,
        )
    error = data.get("error")
    return PulseError(
        message,
        status_code=status_code,
        error=str(error) if error else None,
        body=data,
    )
