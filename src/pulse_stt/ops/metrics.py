"""Prometheus metrics of one server (`GET /metrics`).

One `CollectorRegistry` per `ServerMetrics`, never the library's global one, so two
servers (or tests) in one process never share counters. The engine does not know about
any of this: its scheduler reports each pass to an observer callback and answers
`queue_depths()`, which a gauge reads at scrape time.

Every update is O(1) per event (a word-lag observation is O(1) per new word): nothing here
may slow the streaming path down.
"""

from __future__ import annotations

import bisect
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Literal, Protocol, get_args

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)

from pulse_stt import __version__
from pulse_stt.engine.scheduler import PassReport, QueueDepth
from pulse_stt.ops.collectors import WorkerRestarts
from pulse_stt.protocol import ErrorKind, FinalReason, PassKind, WebhookOutcome

Endpoint = Literal["live", "legacy"]


class TimedSpan(Protocol):
    """A word with times in session seconds (e.g. `text.format.TimedWord`)."""

    @property
    def start(self) -> float: ...

    @property
    def end(self) -> float: ...


AudioKind = Literal["stream", "file"]

# From 10 ms (a partial on an idle server) to 30 s (a long file turn behind a queue).
LATENCY_BUCKETS = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0,
)  # fmt: skip
PASS_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 32, 64)

FINAL_REASONS: tuple[str, ...] = tuple(FinalReason)
MESSAGE_TYPES = ("partial", "final", "vad", "error", "pong", "warning")
PASS_KINDS: tuple[str, ...] = tuple(PassKind)
# Shown as 0 from the start, so that `rate()` and alerts see them before the first one.
KNOWN_ERRORS: tuple[str, ...] = tuple(ErrorKind)
# Why a new session was refused (api/admission.py): the key's limit, the server's, or load.
ADMISSION_REASONS = ("token_limit", "key_limit", "server_full", "overloaded")
# Which database call failed while the store was unreachable (store/outage.py).
STORE_OPERATIONS = ("auth", "token", "usage", "probe")
# Why an authentication failed (api/auth.py): no credentials, wrong ones, or the source is
# throttled after a burst of wrong ones.
AuthFailureReason = Literal["missing", "invalid", "throttled"]
AUTH_FAILURE_REASONS: tuple[AuthFailureReason, ...] = get_args(AuthFailureReason)


class ServerMetrics:
    """Every metric of one server, in its own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        registry = self.registry
        self.build = Info("pulse_stt_build", "The server's version.", registry=registry)
        self.build.info({"version": __version__})
        self.active_sessions = Gauge(
            "pulse_stt_active_sessions",
            "WebSocket sessions open now, by endpoint (live: /waves/v1/stt/live, "
            "legacy: /waves/v1/pulse/get_text).",
            ["endpoint"],
            registry=registry,
        )
        self.sessions = Counter(
            "pulse_stt_sessions",
            "WebSocket sessions accepted, by endpoint.",
            ["endpoint"],
            registry=registry,
        )
        self.audio_seconds = Counter(
            "pulse_stt_audio_seconds",
            "Seconds of audio received: kind=stream (WebSocket, counted as frames arrive) "
            "or file (REST, counted when the request is transcribed).",
            ["kind"],
            registry=registry,
        )
        self.messages = Counter(
            "pulse_stt_messages",
            "WebSocket messages sent, by type: partial, final, vad (speech_started/"
            "speech_ended), error, pong (keepalive answers), warning (ignored messages).",
            ["type"],
            registry=registry,
        )
        self.finals = Counter(
            "pulse_stt_finals",
            "Final transcripts sent, by what ended the turn: eou (silence), finalize, "
            "close (close_stream, end, idle timeout or server shutdown), max_length, max_words.",
            ["reason"],
            registry=registry,
        )
        self.errors = Counter(
            "pulse_stt_errors",
            "Errors sent to a client or requests refused, by kind: the `error` field the "
            "client got (unauthorized, invalid_parameter, bad_audio, bad_message, ...); "
            "too_large also for WebSocket frames over the limit (close 1009); internal for "
            "sessions closed with 1011.",
            ["kind"],
            registry=registry,
        )
        self.rest_requests = Counter(
            "pulse_stt_rest_requests",
            "REST transcription requests answered, by HTTP status.",
            ["status"],
            registry=registry,
        )
        self.first_transcript = Histogram(
            "pulse_stt_first_transcript_seconds",
            "Per turn: arrival of the audio frame where the VAD heard speech start -> the "
            "first message (partial or final) with words of that turn sent.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.finalize = Histogram(
            "pulse_stt_finalize_seconds",
            "A finalize message received -> its from_finalize final sent.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.word_lag = Histogram(
            "pulse_stt_word_lag_seconds",
            "Per word the first time it is sent (partial or final): send time - arrival of "
            "the audio frame holding the word's end.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.decode_pass = Histogram(
            "pulse_stt_decode_pass_seconds",
            "Wall time of one model pass (a batch of jobs decoded together), by kind: "
            "partial, final (speculative finals included), file (REST).",
            ["kind"],
            buckets=PASS_BUCKETS,
            registry=registry,
        )
        self.decode_batch = Histogram(
            "pulse_stt_decode_batch_size",
            "Jobs decoded together in one model pass, by kind.",
            ["kind"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.decode_failures = Counter(
            "pulse_stt_decode_pass_failures",
            "Model passes in which at least one job failed, by kind.",
            ["kind"],
            registry=registry,
        )
        self.queue_depth = Gauge(
            "pulse_stt_queue_depth",
            "Decode jobs waiting for a worker, by model (pulse, pulse-pro) and queue "
            "(finals: live finals; background: partials, speculative finals, file passes).",
            ["model", "queue"],
            registry=registry,
        )
        self._worker_restarts = WorkerRestarts()
        registry.register(self._worker_restarts)
        self.admission_refusals = Counter(
            "pulse_stt_admission_refusals",
            "New sessions (WebSocket or REST) refused, by reason: token_limit "
            "(token_max_sessions: close 1008 / HTTP 429), key_limit "
            "(max_sessions_per_key: close 1008 / HTTP 429), server_full (max_sessions: HTTP "
            "503), overloaded (live finals waiting longer than admission_max_final_wait_s: "
            "HTTP 503).",
            ["reason"],
            registry=registry,
        )
        self.auth_failures = Counter(
            "pulse_stt_auth_failures",
            "Failed authentications (REST, WebSocket handshakes, the page's handshake probe, "
            "POST /v1/tokens), by reason: missing (no credentials: 401), invalid (a wrong, "
            "expired or revoked key or token: 401, charged to its source address), throttled "
            "(refused with 429 unchecked: the source used up auth_failure_burst).",
            ["reason"],
            registry=registry,
        )
        self.auth_failures_by_reason = {
            reason: self.auth_failures.labels(reason) for reason in AUTH_FAILURE_REASONS
        }
        self.oldest_final_wait = Gauge(
            "pulse_stt_oldest_final_wait_seconds",
            "How long the oldest queued live final has waited for the model, by model (0 when "
            "none waits): the signal admission control compares with "
            "admission_max_final_wait_s. Read at scrape time.",
            ["model"],
            registry=registry,
        )
        self.store_failures = Counter(
            "pulse_stt_store_failures",
            "Database calls that failed because the store was unreachable (locked, down, "
            "or past store_timeout_s), by operation: auth (credential lookups), token "
            "(minting), usage (recording), probe (/ready).",
            ["operation"],
            registry=registry,
        )
        self.usage_queued = Gauge(
            "pulse_stt_usage_queued",
            "Usage records waiting for the database to be reachable again. Read at scrape time.",
            registry=registry,
        )
        self.usage_lost = Counter(
            "pulse_stt_usage_lost",
            "Usage records dropped: the queue was full, or the server stopped while the "
            "database was unreachable.",
            registry=registry,
        )
        for operation in STORE_OPERATIONS:
            self.store_failures.labels(operation)
        self.webhook_deliveries = Counter(
            "pulse_stt_webhook_deliveries",
            "Pulse Pro webhook results, by outcome: delivered (2xx), failed (attempts used "
            "up, refused by the receiver, or an address that is not public), aborted (the "
            "server shut down before the job finished).",
            ["outcome"],
            registry=registry,
        )
        for outcome in WebhookOutcome:
            self.webhook_deliveries.labels(outcome)
        for reason in ADMISSION_REASONS:
            self.admission_refusals.labels(reason)
        for endpoint in get_args(Endpoint):
            self.active_sessions.labels(endpoint)
            self.sessions.labels(endpoint)
        # Children used per frame or message: looked up once, not on every update.
        self.audio_seconds_by_kind = {
            audio_kind: self.audio_seconds.labels(audio_kind) for audio_kind in get_args(AudioKind)
        }
        self.messages_by_type = {
            message_type: self.messages.labels(message_type) for message_type in MESSAGE_TYPES
        }
        for reason in FINAL_REASONS:
            self.finals.labels(reason)
        for error in KNOWN_ERRORS:
            self.errors.labels(error)
        for pass_kind in PASS_KINDS:
            self.decode_pass.labels(pass_kind)
            self.decode_batch.labels(pass_kind)
            self.decode_failures.labels(pass_kind)

    # -- engine ----------------------------------------------------------------------

    def watch_queue(self, model: str, depths: Callable[[], QueueDepth]) -> None:
        """Read an engine's queue depths at every scrape."""
        self.queue_depth.labels(model, "finals").set_function(lambda: depths().finals)
        self.queue_depth.labels(model, "background").set_function(lambda: depths().background)

    def watch_final_wait(self, model: str, wait: Callable[[], float]) -> None:
        """Read an engine's oldest live final wait at every scrape."""
        self.oldest_final_wait.labels(model).set_function(wait)

    def auth_failure(self, reason: AuthFailureReason) -> None:
        self.auth_failures_by_reason[reason].inc()

    def admission_refused(self, reason: str) -> None:
        self.admission_refusals.labels(reason).inc()

    def watch_workers(self, model: str, restarts: Callable[[], int]) -> None:
        """Read an engine's count of replaced decode workers at every scrape."""
        self._worker_restarts.watch(model, restarts)

    def observe_pass(self, report: PassReport) -> None:
        """The scheduler's observer: called from a decode worker after every pass."""
        self.decode_pass.labels(report.kind).observe(report.seconds)
        self.decode_batch.labels(report.kind).observe(report.batch_size)
        if report.failed:
            self.decode_failures.labels(report.kind).inc()

    # -- requests --------------------------------------------------------------------

    def error(self, kind: ErrorKind) -> None:
        self.errors.labels(kind).inc()

    def stream_session(
        self, endpoint: Endpoint, *, clock: Callable[[], float] = time.monotonic
    ) -> StreamMetrics:
        return StreamMetrics(self, endpoint, clock=clock)

    def rest_request(self, status: int, *, error: ErrorKind | None, audio_seconds: float) -> None:
        self.rest_requests.labels(str(status)).inc()
        if error is not None:
            self.error(error)
        if audio_seconds > 0:
            self.audio_seconds_by_kind["file"].inc(audio_seconds)

    def store_failure(self, operation: str) -> None:
        self.store_failures.labels(operation).inc()

    def watch_usage_queue(self, queued: Callable[[], int]) -> None:
        self.usage_queued.set_function(queued)

    def webhook_delivery(self, outcome: WebhookOutcome) -> None:
        self.webhook_deliveries.labels(outcome).inc()

    def file_audio(self, audio_seconds: float) -> None:
        """Audio of a whole-file request answered later (webhook mode)."""
        if audio_seconds > 0:
            self.audio_seconds_by_kind["file"].inc(audio_seconds)

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class AudioArrivals:
    """When each stretch of a session's audio arrived: a bounded record of (end of the
    audio received so far in seconds, monotonic arrival time of the frame that brought it).

    Frames that arrive within `merge_s` of a record's time extend that record instead of
    adding one, so a burst of any length is one record and the time error is under
    `merge_s`; at most `max_records` are kept (oldest dropped), ~160 s of 20 ms frames.
    """

    def __init__(self, *, merge_s: float = 0.01, max_records: int = 8192) -> None:
        self._merge_s = merge_s
        self._max_records = max_records
        self._ends: list[float] = []
        self._times: list[float] = []
        self._first = 0  # records before this index are forgotten

    def __len__(self) -> int:
        return len(self._ends) - self._first

    def record(self, end_s: float, arrived_at: float) -> None:
        if len(self) and arrived_at - self._times[-1] < self._merge_s:
            self._ends[-1] = max(self._ends[-1], end_s)
            return
        self._ends.append(end_s)
        self._times.append(arrived_at)
        if len(self) > self._max_records:
            self._first += 1
            if self._first >= self._max_records:  # compact now and then: amortized O(1)
                del self._ends[: self._first]
                del self._times[: self._first]
                self._first = 0

    def arrival_of(self, position_s: float) -> float | None:
        """When the frame holding `position_s` arrived; None when that is forgotten (or
        nothing arrived yet). A position past the last frame (rounding, resampler delay)
        belongs to the last frame."""
        if not len(self):
            return None
        i = bisect.bisect_left(self._ends, position_s, lo=self._first)
        if i == self._first and self._first > 0:
            return None  # older than the oldest record kept: its frame may be forgotten
        return self._times[min(i, len(self._ends) - 1)]


class StreamMetrics:
    """One WebSocket session's share of the metrics, with what the latency figures need.

    Called from the session's event loop only. Audio positions are seconds since the
    session's first audio byte, the same timeline as VAD events and word times.
    """

    _MAX_OPEN_TURNS = 64  # onsets of turns whose first transcript is still owed

    def __init__(
        self,
        server: ServerMetrics,
        endpoint: Endpoint,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._server = server
        self._endpoint = endpoint
        self._clock = clock
        self._arrivals = AudioArrivals()
        self._audio_counted = 0.0
        self._onsets: dict[int, float] = {}  # turn -> arrival of its speech onset
        self._finalizes: deque[float] = deque()
        self._words_until = 0.0  # end of the latest word already sent
        self._ended = False
        self.finals_sent = 0
        self.messages_sent = 0
        server.sessions.labels(endpoint).inc()
        server.active_sessions.labels(endpoint).inc()

    def now(self) -> float:
        return self._clock()

    def audio_received(self, end_s: float, arrived_at: float) -> None:
        """The session's audio now reaches `end_s`; the frame that brought it arrived at
        `arrived_at` (taken when it was received, before decoding)."""
        if end_s > self._audio_counted:
            self._server.audio_seconds_by_kind["stream"].inc(end_s - self._audio_counted)
            self._audio_counted = end_s
        self._arrivals.record(end_s, arrived_at)

    def speech_started(self, turn: int, position_s: float) -> None:
        """The VAD heard turn `turn` start at `position_s` (pauses inside a turn restart
        speech too: only the first onset of a turn counts)."""
        if turn in self._onsets:
            return
        arrived = self._arrivals.arrival_of(position_s)
        if arrived is None:
            return
        if len(self._onsets) >= self._MAX_OPEN_TURNS:
            del self._onsets[min(self._onsets)]
        self._onsets[turn] = arrived

    def finalize_requested(self, received_at: float) -> None:
        self._finalizes.append(received_at)

    def error_sent(self, kind: ErrorKind) -> None:
        self._count("error")
        self._server.error(kind)

    def vad_sent(self) -> None:
        self._count("vad")

    def notice_sent(self, kind: str) -> None:
        """A pong (keepalive answer) or a warning (an ignored message) went out."""
        self._count(kind)

    def transcription_sent(
        self,
        *,
        turn: int,
        is_final: bool,
        reason: FinalReason | None,
        has_text: bool,
        words: Sequence[TimedSpan] = (),
    ) -> None:
        """A transcription message just went out. `words`: its words, only when they carry
        decoded timings (a final decoded without word timestamps has none)."""
        now = self._clock()
        self._count("final" if is_final else "partial")
        if has_text and (onset := self._onsets.pop(turn, None)) is not None:
            self._server.first_transcript.observe(max(0.0, now - onset))
        self._observe_new_words(words, now)
        if not is_final:
            return
        self.finals_sent += 1
        self._server.finals.labels(reason or FinalReason.CLOSE).inc()
        # Turns up to this one are over: an onset left behind was non-speech nobody saw.
        for stale in [t for t in self._onsets if t <= turn]:
            del self._onsets[stale]
        if reason == FinalReason.FINALIZE and self._finalizes:
            self._server.finalize.observe(max(0.0, now - self._finalizes.popleft()))

    def ended(self) -> None:
        if not self._ended:
            self._ended = True
            self._server.active_sessions.labels(self._endpoint).dec()

    def _count(self, message_type: str) -> None:
        self.messages_sent += 1
        self._server.messages_by_type[message_type].inc()

    def _observe_new_words(self, words: Sequence[TimedSpan], now: float) -> None:
        """Words not sent before: those starting at or after the end of the latest word
        already sent. 50 ms of slack: re-aligned, a new word may start a few ms before the
        previous word's end, while an old word starts a whole word earlier."""
        watermark = self._words_until
        latest = watermark
        for word in reversed(words):  # new words are at the end: stop at the first old one
            if word.start < watermark - 0.05:
                break
            arrived = self._arrivals.arrival_of(word.end)
            if arrived is not None:
                self._server.word_lag.observe(max(0.0, now - arrived))
            latest = max(latest, word.end)
        self._words_until = latest
