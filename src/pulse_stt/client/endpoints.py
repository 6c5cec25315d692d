"""Where a client connects: one base URL gives both the WebSocket and the REST address.

`https://api.smallest.ai` → `wss://api.smallest.ai/waves/v1/stt/live` and
`https://api.smallest.ai/waves/v1/stt/`; `http://127.0.0.1:8000` → `ws://…` likewise.
A `ws(s)://` base works too (the REST address then uses `http(s)://`), and a path prefix
(a reverse proxy's `/stt`, say) is kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from pulse_stt.client.errors import PulseError

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV = "PULSE_STT_URL"
KEY_ENV = "PULSE_STT_API_KEY"
LIVE_PATH = "/waves/v1/stt/live"
REST_PATH = "/waves/v1/stt/"

_WS_FOR_HTTP = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_HTTP_FOR_WS = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


@dataclass(frozen=True)
class Endpoints:
    """The addresses of one server, from its base URL."""

    base_url: str

    @classmethod
    def from_base_url(cls, base_url: str | None = None) -> Endpoints:
        """`base_url`, else `$PULSE_STT_URL`, else http://127.0.0.1:8000."""
        raw = (base_url or os.environ.get(URL_ENV) or DEFAULT_URL).strip()
        if "://" not in raw:
            raw = "http://" + raw  # "localhost:8000"
        parts = urlsplit(raw)
        if parts.scheme.lower() not in _WS_FOR_HTTP or not parts.netloc:
            raise PulseError(
                f"the server URL {raw!r} is not usable; give http(s)://host[:port] "
                "(e.g. http://127.0.0.1:8000 or https://api.smallest.ai)."
            )
        path = parts.path.rstrip("/")
        return cls(urlunsplit((parts.scheme.lower(), parts.netloc, path, "", "")))

    def _join(self, scheme_map: dict[str, str], path: str, query: str) -> str:
        parts = urlsplit(self.base_url)
        return urlunsplit((scheme_map[parts.scheme], parts.netloc, parts.path + path, query, ""))

    def live(self, query: str = "") -> str:
        return self._join(_WS_FOR_HTTP, LIVE_PATH, query)

    def rest(self, query: str = "") -> str:
        return self._join(_HTTP_FOR_WS, REST_PATH, query)

    def http(self, path: str) -> str:
        return self._join(_HTTP_FOR_WS, path, "")


def public_url(url: str) -> str:
    """The URL without its query string (which may carry ids), for messages."""
    return url.split("?", 1)[0]


def resolve_api_key(api_key: str | None) -> str:
    """`api_key`, else `$PULSE_STT_API_KEY`; a clear error when neither is set."""
    key = api_key or os.environ.get(KEY_ENV)
    if not key or not key.strip():
        raise PulseError(
            f"no API key: pass api_key=... (or --key) or set {KEY_ENV}. "
            "`pulse-stt keys create` makes one for a pulse-stt server."
        )
    return key.strip()
