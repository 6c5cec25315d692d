"""Pulse Pro webhook delivery (`api.webhook`): retries with backoff over a fake transport
and an injected sleep, the address guard, GET and POST shapes, and shutdown."""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from pulse_stt.api.webhook import (
    MAX_BACKOFF_S,
    DeliveryPolicy,
    WebhookJobs,
    deliver,
    safe_target,
    webhook_payload,
)
from pulse_stt.protocol import RedactEntity, Webhook, WebhookOutcome
from pulse_stt.text.redact import SessionRedactor
from pulse_stt.text.tokens import Token
from tests.unit.test_shutdown import graceful

BODY = {"status": "success", "transcription": "hello", "request_id": "r-1", "metadata": {}}
HOOK = Webhook("http://127.0.0.1:9/cb?token=s3cret", "POST", "order-7")
POLICY = DeliveryPolicy(attempts=4, backoff_s=0.5, timeout_s=1.0, allow_private=True)


class Receiver:
    """A fake transport answering with `statuses` in turn (an exception is raised)."""

    def __init__(self, *statuses: int | Exception) -> None:
        self.statuses = list(statuses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        status = self.statuses.pop(0)
        if isinstance(status, Exception):
            raise status
        return httpx.Response(status)


def run(receiver: Receiver, webhook: Webhook = HOOK, policy: DeliveryPolicy = POLICY):  # type: ignore[no-untyped-def]
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    payload = webhook_payload(BODY, webhook)
    result = asyncio.run(
        deliver(webhook, payload, policy, transport=httpx.MockTransport(receiver), sleep=sleep)
    )
    return result, slept


def test_post_delivers_the_body_with_webhook_extra() -> None:
    receiver = Receiver(200)
    result, slept = run(receiver)
    assert (result.outcome, result.attempts, result.status) == (WebhookOutcome.DELIVERED, 1, 200)
    assert slept == []
    request = receiver.requests[0]
    assert request.method == "POST"
    assert json.loads(request.content) == {**BODY, "webhook_extra": "order-7"}
    # connected to the checked address, with the URL's own host header and query
    assert request.url.host == "127.0.0.1" and request.url.params["token"] == "s3cret"
    assert request.headers["host"] == "127.0.0.1:9"


def test_get_carries_the_result_in_the_query() -> None:
    receiver = Receiver(204)
    result, _ = run(receiver, Webhook("http://127.0.0.1:9/cb", "GET", None))
    assert result.outcome is WebhookOutcome.DELIVERED
    request = receiver.requests[0]
    assert request.method == "GET" and request.content == b""
    query = parse_qs(urlsplit(str(request.url)).query)
    assert query["request_id"] == ["r-1"] and query["status"] == ["success"]
    assert "webhook_extra" not in query
    assert json.loads(query["result"][0]) == BODY


def test_retries_back_off_exponentially_until_delivered() -> None:
    receiver = Receiver(503, httpx.ConnectError("refused"), httpx.ReadTimeout("slow"), 200)
    result, slept = run(receiver)
    assert (result.outcome, result.attempts) == (WebhookOutcome.DELIVERED, 4)
    assert slept == [0.5, 1.0, 2.0]


def test_attempts_are_bounded() -> None:
    receiver = Receiver(500, 502, 429, 408)
    result, slept = run(receiver)
    assert (result.outcome, result.attempts, result.status) == (WebhookOutcome.FAILED, 4, 408)
    assert len(receiver.requests) == 4 and len(slept) == 3
    assert result.error == "the receiver answered HTTP 408"


def test_a_refusal_is_not_retried() -> None:
    for status in (400, 404, 410, 301):
        receiver = Receiver(status)
        result, slept = run(receiver)
        assert (result.outcome, result.attempts, result.status) == (
            WebhookOutcome.FAILED,
            1,
            status,
        )
        assert slept == []


def test_backoff_is_capped() -> None:
    policy = DeliveryPolicy(attempts=20, backoff_s=10.0)
    assert [policy.delay(n) for n in (1, 2, 3, 4)] == [10.0, 20.0, 40.0, MAX_BACKOFF_S]


def test_private_addresses_are_refused_without_trying() -> None:
    receiver = Receiver()
    guarded = DeliveryPolicy(attempts=3, backoff_s=0.5, allow_private=False)
    for url in ("http://127.0.0.1:9/cb", "http://10.0.0.1/cb", "http://[::1]/cb"):
        result, slept = run(receiver, Webhook(url), guarded)
        assert (result.outcome, result.attempts) == (WebhookOutcome.FAILED, 1)
        assert "non-public" in (result.error or "")
    assert receiver.requests == [] and slept == []


def test_logs_name_the_receiver_without_its_path_or_query() -> None:
    assert safe_target("https://user:pw@hooks.example.com:8443/x/y?token=1") == (
        "https://hooks.example.com:8443"
    )


def test_shutdown_waits_for_webhook_jobs_then_aborts_the_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server, ctx = graceful(1.0)
    done: list[str] = []
    cancelled: list[str] = []

    async def job(name: str, seconds: float) -> None:
        try:
            await asyncio.sleep(seconds)
            done.append(name)
        except asyncio.CancelledError:
            cancelled.append(name)
            raise

    async def main() -> None:
        jobs: WebhookJobs = ctx.webhooks
        jobs.start(job("quick", 0.1), "quick")
        jobs.start(job("stuck", 30), "stuck")
        await server.shutdown()
        assert len(jobs) == 0

    started = time.monotonic()
    asyncio.run(main())
    assert done == ["quick"] and cancelled == ["stuck"]
    assert time.monotonic() - started < 2.0
    assert "1 webhook job(s) aborted" in caplog.text


# -- redaction by kind -------------------------------------------------------------------


def toks(text: str) -> list[Token]:
    return [Token(w, i * 0.5, i * 0.5 + 0.4, 0.9) for i, w in enumerate(text.split())]


def test_only_the_kinds_asked_for_are_redacted() -> None:
    text = "My card is 4111 1111 1111 1111 and my phone is 415 555 0132, Mary Smith."
    only_card = SessionRedactor(entities={RedactEntity.CREDIT_CARD}).redact(toks(text))
    joined = " ".join(t.text for t in only_card[0])
    assert only_card[1] == ["[ACCOUNTNUMBER_1]"]
    assert "415 555 0132" in joined and "Mary Smith" in joined
    only_phone = SessionRedactor(entities={RedactEntity.PHONE_NUMBER}).redact(toks(text))
    assert only_phone[1] == ["[PHONENUMBER_1]"]
    assert "4111" in " ".join(t.text for t in only_phone[0])
    names = SessionRedactor(entities={RedactEntity.FIRST_NAME}).redact(toks(text))
    assert names[1] == ["[FIRSTNAME_1]"]
    assert "Smith." in " ".join(t.text for t in names[0])
