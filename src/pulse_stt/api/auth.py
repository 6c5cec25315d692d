"""Authentication for every endpoint: an API key, or a short-lived browser token.

Programs send `Authorization: Bearer <key>` (a browser token works there too). Browsers
cannot set headers on a WebSocket, so the WebSocket also takes a token minted by
`POST /v1/tokens` as the query parameter `token=<token>`, or as the subprotocol
`bearer.<token>` offered together with `pulse-stt`; the server then answers `pulse-stt`
(a browser fails the handshake unless the server picks one of the offered subprotocols,
and echoing the secret would put it in one more header). Only tokens travel those ways:
a long-lived key in a URL would end up in proxy logs.

Failed authentications are counted (`pulse_stt_auth_failures_total`) and charged to their
source address (`FailedLogins`): after a burst, that address gets 429 with Retry-After,
its credentials not even looked at, until its budget refills. Every way in spends the
same budget: REST, the WebSocket handshake, the browser page's handshake probe and
`POST /v1/tokens`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse

from pulse_stt.protocol import ErrorKind
from pulse_stt.store.db import TOKEN_PREFIX, ApiKey, Store
from pulse_stt.store.outage import StoreGuard

if TYPE_CHECKING:
    from pulse_stt.ops.metrics import AuthFailureReason

log = logging.getLogger(__name__)

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


def _usable(credential: Credential | None) -> bool:
    return credential is not None and 0 < len(credential.secret) <= _MAX_SECRET_CHARS


async def authenticate(store: Store, conn: HTTPConnection) -> ApiKey | None:
    """The key a request or WebSocket acts for (a token acts for the key that minted it)."""
    credential = presented_credential(conn)
    if credential is None or not _usable(credential):
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


# -- failed logins -----------------------------------------------------------------------

_MAX_SOURCES = 10_000  # buckets kept (least recently failed dropped first): bounded memory


def client_source(conn: HTTPConnection) -> str:
    """Who failed, for throttling: the client's address (behind the nginx recipe, uvicorn
    takes it from X-Forwarded-For), a whole IPv6 /64 as one source (one host holds one)."""
    host = conn.client.host if conn.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


@dataclass(frozen=True)
class AuthRefusal:
    """A request refused for its credentials: 401, or 429 while its source is throttled."""

    response: JSONResponse
    error: ErrorKind  # the kind `pulse_stt_errors_total` counts


def _ignore(reason: AuthFailureReason) -> None:
    pass


class FailedLogins:
    """A token bucket of failed authentications per source: `burst` failures at once, then
    one more every 60/`per_minute` seconds. A source with no failure left is refused (429)
    before its credentials are checked, so guessing runs at the refill rate whatever the
    client's speed. Missing credentials are counted but not charged (they guess nothing).
    O(1) per event; at most `max_sources` sources are remembered. `burst=0`: off."""

    def __init__(
        self,
        burst: int,
        per_minute: float,
        *,
        count: Callable[[AuthFailureReason], None] = _ignore,
        max_sources: int = _MAX_SOURCES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.burst = burst
        self._per_s = max(per_minute, 1e-9) / 60.0
        self._count = count
        self._max_sources = max_sources
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # (left, at)

    def __len__(self) -> int:
        return len(self._buckets)

    def _left(self, source: str, now: float) -> float:
        entry = self._buckets.get(source)
        if entry is None:
            return float(self.burst)
        left, at = entry
        return min(float(self.burst), left + (now - at) * self._per_s)

    def retry_after(self, source: str) -> float:
        """Seconds until `source` may try again; 0 when it may now."""
        if self.burst <= 0:
            return 0.0
        left = self._left(source, self._clock())
        return 0.0 if left >= 1 else (1 - left) / self._per_s

    def check(self, source: str) -> AuthRefusal | None:
        """The 429 for a throttled source (counted), None when it may authenticate."""
        wait = self.retry_after(source)
        if wait <= 0:
            return None
        self._count("throttled")
        seconds = max(1, math.ceil(wait))
        body = {
            "status": "error",
            "error": ErrorKind.AUTH_THROTTLED,
            "message": "too many failed authentications from this address; credentials "
            f"from it are refused without being checked; retry in {seconds} s.",
        }
        response = JSONResponse(body, status_code=429, headers={"Retry-After": str(seconds)})
        return AuthRefusal(response, ErrorKind.AUTH_THROTTLED)

    def missing(self) -> None:
        self._count("missing")

    def failed(self, source: str, via: str) -> None:
        """Charge a wrong credential (sent `via` header, query or subprotocol) to `source`."""
        self._count("invalid")
        log.info("authentication failed from %s (credential in the %s)", source, via)
        if self.burst <= 0:
            return
        now = self._clock()
        left = self._left(source, now) - 1
        self._buckets[source] = (left, now)
        self._buckets.move_to_end(source)
        while len(self._buckets) > self._max_sources:
            self._buckets.popitem(last=False)
        if left < 1 <= left + 1:  # this failure used up the budget
            log.warning(
                "%s: %d failed authentications in a burst; its credentials are refused "
                "(429) for %.0f s, then one try every %.0f s",
                source,
                self.burst,
                (1 - left) / self._per_s,
                1 / self._per_s,
            )


def unauthorized() -> AuthRefusal:
    return AuthRefusal(JSONResponse(UNAUTHORIZED_BODY, status_code=401), ErrorKind.UNAUTHORIZED)


class AuthContext(Protocol):
    """What `authorize` needs of the server's context (api/context.py's ServerContext)."""

    @property
    def store(self) -> Store: ...

    @property
    def failed_logins(self) -> FailedLogins: ...

    @property
    def store_guard(self) -> StoreGuard: ...


async def authorize(ctx: AuthContext, conn: HTTPConnection) -> ApiKey | AuthRefusal:
    """`authenticate` for the endpoints, with failed logins counted and throttled per
    source: the key, or the 401/429 to answer. Raises StoreUnavailableError when the store
    cannot answer within its deadline (the caller answers 503)."""
    guard = ctx.failed_logins
    source = client_source(conn)
    throttled = guard.check(source)
    if throttled is not None:
        return throttled
    credential = presented_credential(conn)
    if credential is None or not credential.secret:
        guard.missing()
        return unauthorized()
    key = None
    if _usable(credential):
        key = await ctx.store_guard.call("auth", asyncio.to_thread(_lookup, ctx.store, credential))
    if key is None:
        guard.failed(source, credential.source)
        return unauthorized()
    return key
