"""What `pulse-stt transcribe` and `pulse-stt stream` share: exit codes, usage errors, the
one-line description of a server error, the client and the shaping options of the flags.

They are clients: they need a server's URL and key (`--url`/`--key` or `PULSE_STT_URL`/
`PULSE_STT_API_KEY`), never server settings. Exit codes: 0 done, 2 usage error (bad
arguments, missing file, no key, a missing optional extra), 1 the server refused or could
not be reached (with a message that says which), 130 a second Ctrl-C.
"""

from __future__ import annotations

import argparse
from typing import Any

from pulse_stt.client.endpoints import KEY_ENV, URL_ENV
from pulse_stt.client.errors import (
    AuthenticationError,
    ParameterError,
    PulseConnectionError,
    PulseError,
)
from pulse_stt.client.streaming import AsyncPulseClient

EXIT_OK, EXIT_SERVER, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class UsageError(Exception):
    """Bad arguments: exit code 2."""


def describe_error(exc: PulseError, base_url: str) -> str:
    """One line a person can act on."""
    if isinstance(exc, AuthenticationError):
        return (
            f"the server refused the API key (HTTP 401: {exc.message.rstrip('.')}). Pass --key "
            f"or set {KEY_ENV} to a valid key (`pulse-stt keys create` makes one for pulse-stt)."
        )
    if isinstance(exc, ParameterError):
        allowed = f" Allowed: {exc.allowed}." if exc.allowed and len(exc.allowed) < 200 else ""
        return f"the server rejected the parameter {exc.param!r}: {exc.message}{allowed}"
    if isinstance(exc, PulseConnectionError):
        return f"{exc.message}. Is the server running at {base_url}? Pass --url or set {URL_ENV}."
    status = f" (HTTP {exc.status_code})" if exc.status_code else ""
    return f"{exc.message}{status}"


def make_client(args: argparse.Namespace) -> AsyncPulseClient:
    try:
        return AsyncPulseClient(args.url, args.key)
    except PulseError as exc:  # no key, unusable URL
        raise UsageError(exc.message) from None


def keywords_arg(args: argparse.Namespace) -> str | None:
    return args.keywords or None


def shaping_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of the shaping flags; an unset switch is left to the server's default."""
    return {
        "language": args.language,
        "diarize": args.diarize or None,
        "itn_normalize": args.itn or None,
        "redact_pii": args.redact_pii or None,
        "redact_pci": args.redact_pci or None,
    }
