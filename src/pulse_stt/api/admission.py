"""Who may start a session now: per-key and per-server limits, and load-based admission.

A *session* is a WebSocket stream or a REST request being transcribed; both hold a slot
from before they start (before the upgrade, before the body is read) until they end. A
stream of N interleaved channels (`channels=N`) is N streams of model work and holds N
slots (at most a whole limit, so it can always start once that limit is free); a REST
file with `multichannel=true` holds one (its channels are known only once it is decoded,
and its turns queue behind every live final as file work).

Refusals, in the order they are checked:

- `token_limit`: the browser token the session was opened with already holds
  `token_max_sessions` slots (a token is handed to a page: it gets a small share of what
  its key may hold). Answered like `key_limit`.
- `key_limit`: the key already holds `max_sessions_per_key` slots. WebSocket: accepted,
  then an `error` message (`too_many_sessions`) and close 1008, as the Pulse API does;
  REST: HTTP 429. Retrying helps only once one of the key's sessions ends. By default a
  key may hold a quarter of the server (16 of 64), so no one key can take every slot.
- `server_full`: the server holds `max_sessions` slots. HTTP 503 before the upgrade (and
  on REST), so that a load balancer can send the client to another server (deploy/
  nginx.conf retries 503 on the next upstream).
- `overloaded`: the engine cannot keep the sessions it has within their latency bounds:
  the oldest live final waiting for the model has waited longer than
  `admission_max_final_wait_s`. HTTP 503, like `server_full`. Sessions already admitted
  are never closed for load: they keep getting their finals, only new ones are refused.

Every refusal carries `Retry-After` (`admission_retry_after_s`). Everything here runs on
the event loop (one thread), so the counts need no lock.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from pulse_stt.config import Settings
from pulse_stt.protocol import ErrorKind

log = logging.getLogger(__name__)

RefusalReason = Literal["token_limit", "key_limit", "server_full", "overloaded"]
REFUSAL_REASONS: tuple[RefusalReason, ...] = (
    "token_limit",
    "key_limit",
    "server_full",
    "overloaded",
)
_PER_CLIENT_REASONS = ("token_limit", "key_limit")  # the client's own limits: 429


class LoadSignal(Protocol):
    """What admission control reads from an engine (`engine.Engine` has it)."""

    def oldest_final_wait(self) -> float: ...


@dataclass(frozen=True)
class Refusal:
    """Why a session may not start now, as the client will be told."""

    reason: RefusalReason
    status: int  # HTTP status: 429 (key or token limit) or 503
    error: ErrorKind  # the `error` code in the JSON body / message
    message: str
    retry_after_s: int

    def body(self) -> dict[str, object]:
        return {
            "status": "error",
            "error": self.error,
            "message": self.message,
            "retry_after_s": self.retry_after_s,
        }

    def response(self) -> JSONResponse:
        """The HTTP answer: REST, or a WebSocket refused before the upgrade."""
        return JSONResponse(
            self.body(),
            status_code=self.status,
            headers={"Retry-After": str(self.retry_after_s)},
        )

    async def refuse_stream(self, websocket: WebSocket, subprotocol: str | None) -> None:
        """Refuse a WebSocket: a key over its limit is accepted and told why in an `error`
        message, then closed with 1008 (what Pulse clients expect); the server's own
        refusals are HTTP 503 before the upgrade, which load balancers retry elsewhere."""
        if self.reason not in _PER_CLIENT_REASONS:
            await websocket.send_denial_response(self.response())
            return
        await websocket.accept(subprotocol=subprotocol)
        await websocket.send_json({"type": "error", **self.body()})
        holder = "token" if self.reason == "token_limit" else "API key"
        await websocket.close(code=1008, reason=f"too many sessions for this {holder}")


class Slot:
    """One admitted session's place; `release()` (or leaving the `with` block) gives it back."""

    def __init__(
        self, slots: SessionSlots, key_id: int, token: str | None = None, weight: int = 1
    ) -> None:
        self._slots = slots
        self._key_id = key_id
        self._token = token
        self.weight = weight
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots._release(self._key_id, self._token, self.weight)

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


class SessionSlots:
    """Live sessions (WebSocket streams and REST requests in flight), per browser token,
    per key and in total. A limit of 0 means unlimited."""

    def __init__(self, *, max_total: int, max_per_key: int, max_per_token: int = 0) -> None:
        self.max_total = max_total
        self.max_per_key = max_per_key
        self.max_per_token = max_per_token
        self._per_key: Counter[int] = Counter()
        self._per_token: Counter[str] = Counter()
        self._total = 0

    @property
    def total(self) -> int:
        return self._total

    def held_by(self, key_id: int) -> int:
        return self._per_key[key_id]

    def held_by_token(self, token: str) -> int:
        return self._per_token[token]

    def take(self, key_id: int, token: str | None = None, weight: int = 1) -> Slot | RefusalReason:
        """A slot for a session of key `key_id`, opened with browser token `token` (any
        string that names the token, not necessarily its secret) or with the key itself.

        `weight`: how many sessions it counts as (a stream of N channels: N). A session
        heavier than a limit needs that limit free, not more, so it is never refused for
        good."""

        def full(held: int, limit: int) -> bool:
            return bool(limit) and held + min(weight, limit) > limit

        if token is not None and full(self._per_token[token], self.max_per_token):
            return "token_limit"
        if full(self._per_key[key_id], self.max_per_key):
            return "key_limit"
        if full(self._total, self.max_total):
            return "server_full"
        self._per_key[key_id] += weight
        if token is not None:
            self._per_token[token] += weight
        self._total += weight
        return Slot(self, key_id, token, weight)

    def _release(self, key_id: int, token: str | None = None, weight: int = 1) -> None:
        self._total -= weight
        self._per_key[key_id] -= weight
        if self._per_key[key_id] <= 0:
            del self._per_key[key_id]
        if token is not None:
            self._per_token[token] -= weight
            if self._per_token[token] <= 0:
                del self._per_token[token]


class Admission:
    """The decision for each new session: a `Slot` to hold while it runs, or a `Refusal`."""

    def __init__(
        self,
        slots: SessionSlots,
        *,
        max_final_wait_s: float,
        retry_after_s: int,
        on_refusal: Callable[[RefusalReason], None] = lambda _reason: None,
    ) -> None:
        self.slots = slots
        self.max_final_wait_s = max_final_wait_s  # 0: admission by load is off
        self.retry_after_s = retry_after_s
        self._on_refusal = on_refusal

    @classmethod
    def from_settings(
        cls, settings: Settings, on_refusal: Callable[[RefusalReason], None]
    ) -> Admission:
        for warning in limit_warnings(settings):
            log.warning(warning)
        return cls(
            SessionSlots(
                max_total=settings.max_sessions,
                max_per_key=settings.max_sessions_per_key,
                max_per_token=settings.token_max_sessions,
            ),
            max_final_wait_s=settings.admission_max_final_wait_s,
            retry_after_s=settings.admission_retry_after_s,
            on_refusal=on_refusal,
        )

    def admit(
        self, key_id: int, load: LoadSignal, *, token: str | None = None, weight: int = 1
    ) -> Slot | Refusal:
        """`token`: what names the browser token the session was opened with (None: the
        key itself); a token's sessions count against the token's own limit too.
        `weight`: the sessions it counts as (a stream of N channels holds N slots)."""
        taken = self.slots.take(key_id, token, weight)
        if isinstance(taken, Slot):
            wait = load.oldest_final_wait() if self.max_final_wait_s else 0.0
            if wait <= self.max_final_wait_s:
                return taken
            taken.release()
            refusal = self._overloaded(wait)
        elif taken == "key_limit":
            refusal = self._key_limit()
        elif taken == "token_limit":
            refusal = self._token_limit()
        else:
            refusal = self._server_full()
        self._on_refusal(refusal.reason)
        return refusal

    def _key_limit(self) -> Refusal:
        limit = self.slots.max_per_key
        return Refusal(
            "key_limit",
            429,
            ErrorKind.TOO_MANY_SESSIONS,
            f"this API key already has {limit} sessions open on this server (WebSocket "
            f"streams and REST requests in flight), the most it allows per key "
            f"(max_sessions_per_key); end one of them before starting another.",
            self.retry_after_s,
        )

    def _token_limit(self) -> Refusal:
        limit = self.slots.max_per_token
        return Refusal(
            "token_limit",
            429,
            ErrorKind.TOO_MANY_SESSIONS,
            f"this browser token already has {limit} sessions open on this server, the most "
            f"one token allows (token_max_sessions); end one of them, or mint another token "
            f"for another page.",
            self.retry_after_s,
        )

    def _server_full(self) -> Refusal:
        return Refusal(
            "server_full",
            503,
            ErrorKind.SERVER_FULL,
            f"this server is serving its limit of {self.slots.max_total} sessions "
            f"(max_sessions); try again in {self.retry_after_s} s or use another server.",
            self.retry_after_s,
        )

    def _overloaded(self, wait_s: float) -> Refusal:
        return Refusal(
            "overloaded",
            503,
            ErrorKind.OVERLOADED,
            f"the server is overloaded: transcripts owed to open sessions have waited "
            f"{wait_s:.1f} s for the model (more than admission_max_final_wait_s = "
            f"{self.max_final_wait_s:g} s), so it takes no new sessions until it catches "
            f"up; try again in {self.retry_after_s} s or use another server.",
            max(self.retry_after_s, math.ceil(wait_s)),
        )


def limit_warnings(settings: Settings) -> list[str]:
    """What is wrong with the configured session limits, logged as warnings at startup: a
    per-key or per-token limit that never applies lets one key (or one page's token) take
    every slot of the server."""
    total = settings.max_sessions
    warnings: list[str] = []
    for name, limit in (
        ("max_sessions_per_key", settings.max_sessions_per_key),
        ("token_max_sessions", settings.token_max_sessions),
    ):
        if total and (limit == 0 or limit >= total):
            shown = "unlimited (0)" if limit == 0 else f"{limit}"
            warnings.append(
                f"{name} is {shown}, not below max_sessions ({total}): one "
                f"{'API key' if name.startswith('max') else 'browser token'} can take every "
                "session slot of this server and lock every other key out; set it below "
                "max_sessions (the default per key is a quarter of it)."
            )
    return warnings


class FramePacer:
    """Per-session frame budget (`max_frames_per_s`): each WebSocket frame costs the server
    the same fixed work (a trip through the DSP pool, a parse) whatever its size, so a
    flood of 1-byte frames would take a core and delay every other session's finals. A
    token bucket of `rate` frames a second, holding at most one second's worth: within it
    frames are read at once; over it the receive loop waits before reading the next frame,
    and TCP slows the sender. Only the flooding session waits."""

    def __init__(self, rate: float, clock: Callable[[], float]) -> None:
        self.rate = rate  # 0: no limit
        self._clock = clock
        self._tokens = rate
        self._last = clock()

    def charge(self) -> float:
        """Take one frame's worth; the seconds to wait before reading the next frame."""
        if not self.rate:
            return 0.0
        now = self._clock()
        self._tokens = min(self.rate, self._tokens + (now - self._last) * self.rate)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate
