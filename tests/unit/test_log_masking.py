"""Secrets in query strings are masked in every log line, whatever their spelling
(issue 20 row 8: `?%74oken=<token>` was accepted as `token` and logged unmasked)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from urllib.parse import parse_qsl

import pytest

from pulse_stt.ops.logs import REDACTED, configure_logging, mask_secrets

SECRET = "pstt_tok_s3cr3t-VALUE"


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    stream = io.StringIO()
    configure_logging(level="info", log_format="json", stream=stream)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


# Query strings a client can send: each carries SECRET under a name that the server (one
# percent-decoding, as Starlette reads a query) or an intermediary (a second decoding)
# could take for a credential.
ENCODED_VARIANTS = [
    f"token={SECRET}",
    f"%74oken={SECRET}",
    f"to%6Ben={SECRET}",
    f"%74%6F%6B%65%6E={SECRET}",
    f"%74%6f%6b%65%6e={SECRET}",
    f"TOKEN={SECRET}",
    f"Token={SECRET}",
    f"%54OKEN={SECRET}",
    f"api_key={SECRET}",
    f"api%5Fkey={SECRET}",
    f"API-KEY={SECRET}",
    f"apiKey={SECRET}",
    f"access_token={SECRET}",
    f"key={SECRET}",
    f"password={SECRET}",
    f"client_secret={SECRET}",
    f"authorization={SECRET}",
    f"token+={SECRET}",  # `+` is a space: the name reads "token "
    f"+token={SECRET}",
    f"%20token={SECRET}",
    f"%2574oken={SECRET}",  # double-encoded: masked too (a proxy may decode twice)
    f"model=pulse&token={SECRET}",
    f"token=x&token={SECRET}",  # a repeated key: every value masked
    f"model=pulse;token={SECRET}",
    f"model=pulse#token={SECRET}",  # a fragment (clients do not send one; masked anyway)
    f"token={SECRET}#frag",
]


@pytest.mark.parametrize("query", ENCODED_VARIANTS)
def test_every_spelling_of_a_secret_name_is_masked(query: str) -> None:
    for line in (
        f"/waves/v1/stt/live?{query}",
        f'127.0.0.1:5555 - "GET /v1/listen?{query} HTTP/1.1" 401',
        f"https://files.example/a.wav?{query} could not be fetched",
    ):
        masked = mask_secrets(line)
        assert SECRET not in masked, line
        assert REDACTED in masked


def test_the_server_reads_those_names_as_token() -> None:
    # The reason for decoding first: what the server reads as `token`.
    assert dict(parse_qsl(f"%74oken={SECRET}")) == {"token": SECRET}
    assert dict(parse_qsl(f"to%6Ben={SECRET}")) == {"token": SECRET}


@pytest.mark.parametrize(
    "query",
    [
        "keywords=Kubernetes:5&model=pulse",
        "language=en&encoding=linear16&sample_rate=16000",
        "keyterm=Pulse&punctuate=true",
        "smart_format=true&diarize=false",
    ],
)
def test_ordinary_parameters_are_left_alone(query: str) -> None:
    line = f'"GET /waves/v1/stt/live?{query} HTTP/1.1"'
    assert mask_secrets(line) == line


def test_masking_keeps_the_other_parameters_and_the_name_as_sent() -> None:
    line = f"/waves/v1/stt/live?model=pulse&%74oken={SECRET}&language=en"
    assert mask_secrets(line) == f"/waves/v1/stt/live?model=pulse&%74oken={REDACTED}&language=en"


def test_uvicorn_access_line_with_an_encoded_name_is_masked(log_lines: io.StringIO) -> None:
    # How uvicorn logs a request: the query string as sent, in the arguments.
    logging.getLogger("uvicorn.access").info(
        '%s - "%s %s HTTP/%s" %d',
        "127.0.0.1:5555",
        "GET",
        f"/waves/v1/stt/live?%74oken={SECRET}&model=pulse",
        "1.1",
        426,
    )
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" [accepted]', "127.0.0.1:5555", f"/waves/v1/stt/live?TOKEN={SECRET}"
    )
    lines = log_lines.getvalue().splitlines()
    assert len(lines) == 2
    assert not any(SECRET in line for line in lines)
    message = json.loads(lines[0])["message"]
    assert message.endswith(f'?%74oken={REDACTED}&model=pulse HTTP/1.1" 426')


def test_context_fields_and_tracebacks_are_masked(log_lines: io.StringIO) -> None:
    log = logging.getLogger("pulse_stt.api.fetch")
    log.warning("fetch failed", extra={"url": f"https://files.example/a.wav?to%6Ben={SECRET}"})
    log.warning("by name", extra={"api_key": SECRET})
    try:
        raise ValueError(f"GET https://files.example/a.wav?%74oken={SECRET} failed")
    except ValueError:
        log.exception("fetch failed")
    text = log_lines.getvalue()
    assert len(text.splitlines()) == 3
    assert SECRET not in text
