"""Pulse Pro webhook mode: deliver a whole-file result to the client's `webhook_url`.

`POST /waves/v1/stt/?model=pulse-pro&webhook_url=...` is answered at once with
`{"status": "processing", "request_id": ...}`; api/rest.py then transcribes in the
background (`WebhookJobs`) and hands the body a synchronous request would have got, plus
`webhook_extra`, to `deliver()`:

- POST: that body as JSON.
- GET: the query string `request_id`, `status`, `webhook_extra` (when given) and `result`,
  the same JSON body as one compact string (long transcripts make long URLs: prefer POST).

The receiver's address goes through the same guard as REST `{"url": ...}` bodies
(api/fetch.py: http(s) only, every resolved address public unless `allow_private_urls`,
the connection pinned to the checked address); redirects are not followed. A 2xx answer
is delivered; connection errors, timeouts, 408, 429 and 5xx are retried with exponential
backoff up to `webhook_attempts`; any other answer, or an address that is not allowed,
fails at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from pulse_stt.api.fetch import FetchError, pin_url
from pulse_stt.config import Settings
from pulse_stt.protocol import Webhook, WebhookOutcome

log = logging.getLogger(__name__)

MAX_BACKOFF_S = 60.0
_RETRY_STATUSES = frozenset({408, 425, 429})

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class DeliveryPolicy:
    attempts: int = 5
    backoff_s: float = 1.0  # before the first retry; doubles, capped at MAX_BACKOFF_S
    timeout_s: float = 10.0  # one attempt
    allow_private: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> DeliveryPolicy:
        return cls(
            attempts=settings.webhook_attempts,
            backoff_s=settings.webhook_backoff_s,
            timeout_s=settings.webhook_timeout_s,
            allow_private=settings.allow_private_urls,
        )

    def delay(self, retry: int) -> float:
        """The wait before retry number `retry` (1 = the second attempt)."""
        return float(min(self.backoff_s * 2 ** (retry - 1), MAX_BACKOFF_S))


@dataclass(frozen=True)
class DeliveryResult:
    outcome: WebhookOutcome
    attempts: int
    status: int | None = None  # the receiver's last HTTP status, if it answered
    error: str | None = None  # why the last attempt failed


def webhook_payload(body: dict[str, Any], webhook: Webhook) -> dict[str, Any]:
    """The synchronous answer's body, with `webhook_extra` when the request gave one."""
    payload = dict(body)
    if webhook.extra is not None:
        payload["webhook_extra"] = webhook.extra
    return payload


def request_parts(webhook: Webhook, payload: dict[str, Any]) -> dict[str, Any]:
    """httpx keyword arguments that carry `payload` by `webhook.method`."""
    if webhook.method == "POST":
        return {"json": payload}
    params = {"request_id": str(payload.get("request_id", "")), "status": str(payload["status"])}
    if webhook.extra is not None:
        params["webhook_extra"] = webhook.extra
    params["result"] = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return {"params": params}


def safe_target(url: str) -> str:
    """What the logs may say about a webhook URL: scheme, host and port (its path or query
    may hold a secret)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


async def deliver(
    webhook: Webhook,
    payload: dict[str, Any],
    policy: DeliveryPolicy,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    sleep: Sleep = asyncio.sleep,
) -> DeliveryResult:
    """Deliver `payload` to the webhook, retrying as the module docstring says."""
    parts = request_parts(webhook, payload)
    status: int | None = None
    error: str | None = None
    async with httpx.AsyncClient(
        timeout=policy.timeout_s, follow_redirects=False, transport=transport
    ) as client:
        for attempt in range(1, policy.attempts + 1):
            if attempt > 1:
                await sleep(policy.delay(attempt - 1))
            try:
                target = await pin_url(webhook.url, allow_private=policy.allow_private)
            except FetchError as exc:  # not an address we may call: retrying will not help
                return DeliveryResult(WebhookOutcome.FAILED, attempt, None, str(exc))
            try:
                response = await client.request(
                    webhook.method,
                    target.url,
                    headers={"Host": target.host, "User-Agent": "pulse-stt-webhook"},
                    extensions={"sni_hostname": target.sni},
                    **parts,
                )
            except httpx.TimeoutException:
                status, error = None, f"no answer within {policy.timeout_s:g} s"
                continue
            except httpx.HTTPError as exc:
                status, error = None, f"could not connect ({type(exc).__name__})"
                continue
            status = response.status_code
            if 200 <= status < 300:
                return DeliveryResult(WebhookOutcome.DELIVERED, attempt, status)
            error = f"the receiver answered HTTP {status}"
            if status < 500 and status not in _RETRY_STATUSES:
                return DeliveryResult(WebhookOutcome.FAILED, attempt, status, error)
    return DeliveryResult(WebhookOutcome.FAILED, policy.attempts, status, error)


class WebhookJobs:
    """The webhook jobs in flight (transcription, then delivery), so that shutdown can wait
    for them and report the ones it cuts. Used from the event loop only."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, job: Coroutine[Any, Any, None], request_id: str) -> None:
        task = asyncio.get_running_loop().create_task(job, name=f"webhook-{request_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for every job; whether none is left."""
        if self._tasks and timeout_s > 0:
            await asyncio.wait(set(self._tasks), timeout=timeout_s)
        return not self._tasks

    async def abort_all(self) -> int:
        """Cancel the jobs still running (each reports itself as aborted); how many."""
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        return len(tasks)


def log_delivery(
    result: DeliveryResult,
    *,
    request_id: str,
    webhook: Webhook,
    started: float,
    transcript: str | None,
) -> None:
    """One line per webhook job; the transcript only when the caller passes it (the
    `log_transcripts` setting)."""
    fields: dict[str, object] = {
        "request_id": request_id,
        "webhook": safe_target(webhook.url),
        "method": webhook.method,
        "outcome": result.outcome.value,
        "attempts": result.attempts,
        "status": result.status,
        "error": result.error,
        "duration_s": round(time.monotonic() - started, 3),
    }
    if transcript is not None:
        fields["transcript"] = transcript
    level = logging.INFO if result.outcome is WebhookOutcome.DELIVERED else logging.WARNING
    log.log(level, "webhook %s", result.outcome.value, extra=fields)
