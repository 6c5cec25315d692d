"""What a secret looks like, in one place: the names under which a credential can travel
(a query parameter, a log field) and the masking of their values in text.

A name is read the way a server or an intermediary could read it before it is judged:
percent-decoded (`%74oken` is `token`, as Starlette reads a query), `+` as a space, case
and separators ignored (`TOKEN`, `api-key`, `apiKey`, `api_key` are one name). A name is
decoded until it no longer changes, up to `MAX_DECODINGS` times: pulse-stt itself decodes
a query once, so `%2574oken` is not `token` to it, but a proxy or client library that
decodes twice would make it one, and masking a value that was not a secret costs nothing.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

REDACTED = "[redacted]"
MAX_DECODINGS = 4
# A name is a secret's when, lower-cased with everything but letters and digits removed,
# it ends with one of these: `token`, `access_token`, `api_key`, `x-api-key`, `apiKey`,
# `client_secret`, `authorization`, `X-Amz-Signature`... but not `keywords`, `key_id`.
SECRET_NAME_ENDINGS = (
    "token",
    "key",
    "secret",
    "auth",
    "authorization",
    "password",
    "passwd",
    "pwd",
    "signature",
    "sig",
    "credential",
    "credentials",
    "jwt",
    "bearer",
)
# One `name=value` pair of a query string (or a fragment) anywhere in a line of text: after
# `?`, `&`, `;` or `#`, up to the next separator, blank or quote (a backslash ends it too:
# JSON escapes a quote as `\"`).
_PAIR = re.compile(r"(?P<head>[?&;#](?P<name>[^=?&;#\s\"'\\<>]{1,256})=)(?P<value>[^&;#\s\"'\\]*)")
_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def is_secret_name(name: str) -> bool:
    """Whether a value under this name (a query parameter, a log field) is a credential."""
    for _ in range(MAX_DECODINGS):
        decoded = unquote_plus(name)
        if decoded == name:
            break
        name = decoded
    squashed = _NOT_ALNUM.sub("", name.lower())
    return squashed.endswith(SECRET_NAME_ENDINGS)


def mask_secrets(text: str) -> str:
    """`text` with the value of every secret-named query parameter replaced by REDACTED
    (the name is kept as sent, so a line still shows which spelling was used)."""
    if "=" not in text:
        return text
    return _PAIR.sub(_mask_pair, text)


def _mask_pair(match: re.Match[str]) -> str:
    if match["value"] and is_secret_name(match["name"]):
        return match["head"] + REDACTED
    return match[0]
