"""`pulse_stt.ops.metrics`: the server's Prometheus metrics and the per-session latency figures."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pulse_stt.engine.scheduler import PassReport, QueueDepth
from pulse_stt.ops.metrics import AudioArrivals, ServerMetrics, StreamMetrics


@dataclass(frozen=True)
class W:
    start: float
    end: float


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def value(metrics: ServerMetrics, name: str, **labels: str) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    assert found is not None, (name, labels)
    return found


def stream_at_real_time(session: StreamMetrics, seconds: float, start: float = 1000.0) -> None:
    """20 ms frames, each arriving when its audio has been spoken: frame i brings the audio
    up to 0.02 (i + 1) s and arrives at start + 0.02 (i + 1)."""
    for i in range(round(seconds / 0.02)):
        end = round(0.02 * (i + 1), 6)
        session.audio_received(end, start + end)


@pytest.fixture
def metrics() -> ServerMetrics:
    return ServerMetrics()


def test_each_server_has_its_own_registry() -> None:
    first, second = ServerMetrics(), ServerMetrics()
    first.error("bad_audio")
    assert value(first, "pulse_stt_errors_total", kind="bad_audio") == 1
    assert value(second, "pulse_stt_errors_total", kind="bad_audio") == 0


def test_session_counts_and_active_gauge(metrics: ServerMetrics) -> None:
    live = metrics.stream_session("live")
    legacy = metrics.stream_session("legacy")
    assert value(metrics, "pulse_stt_sessions_total", endpoint="live") == 1
    assert value(metrics, "pulse_stt_active_sessions", endpoint="live") == 1
    assert value(metrics, "pulse_stt_active_sessions", endpoint="legacy") == 1
    live.ended()
    live.ended()  # idempotent: a session is only ever subtracted once
    assert value(metrics, "pulse_stt_active_sessions", endpoint="live") == 0
    assert value(metrics, "pulse_stt_sessions_total", endpoint="live") == 1
    legacy.ended()
    assert value(metrics, "pulse_stt_active_sessions", endpoint="legacy") == 0


def test_audio_seconds_count_each_frame_once(metrics: ServerMetrics) -> None:
    session = metrics.stream_session("live")
    stream_at_real_time(session, 2.0)
    session.audio_received(2.0, 1003.0)  # nothing new (e.g. an undecodable frame's retry)
    assert value(metrics, "pulse_stt_audio_seconds_total", kind="stream") == pytest.approx(2.0)
    metrics.rest_request(200, error=None, audio_seconds=12.5)
    assert value(metrics, "pulse_stt_audio_seconds_total", kind="file") == 12.5
    assert value(metrics, "pulse_stt_rest_requests_total", status="200") == 1


def test_word_lag_counts_each_word_once_from_its_audio_arrival(metrics: ServerMetrics) -> None:
    clock = Clock()
    session = metrics.stream_session("live", clock=clock)
    stream_at_real_time(session, 3.0)
    clock.now = 1002.0
    session.transcription_sent(
        turn=0, is_final=False, reason=None, has_text=True, words=[W(0.3, 0.7), W(0.75, 1.1)]
    )
    # The audio up to 0.7 s was complete when the frame ending there arrived, at 1000.7.
    assert value(metrics, "pulse_stt_word_lag_seconds_count") == 2
    assert value(metrics, "pulse_stt_word_lag_seconds_sum") == pytest.approx(1.3 + 0.9)
    clock.now = 1003.0
    # The next partial re-times the old words a little and adds one: only the new one counts.
    session.transcription_sent(
        turn=0,
        is_final=False,
        reason=None,
        has_text=True,
        words=[W(0.31, 0.69), W(0.74, 1.12), W(1.1, 1.5)],
    )
    assert value(metrics, "pulse_stt_word_lag_seconds_count") == 3
    assert value(metrics, "pulse_stt_word_lag_seconds_sum") == pytest.approx(2.2 + 1.5)
    # The final repeats them all: nothing new.
    session.transcription_sent(
        turn=0,
        is_final=True,
        reason="eou",
        has_text=True,
        words=[W(0.3, 0.7), W(0.75, 1.1), W(1.1, 1.5)],
    )
    assert value(metrics, "pulse_stt_word_lag_seconds_count") == 3
    # Untimed words (a final decoded without word timestamps) are not measured.
    session.transcription_sent(turn=1, is_final=True, reason="eou", has_text=True)
    assert value(metrics, "pulse_stt_word_lag_seconds_count") == 3


def test_first_transcript_once_per_turn_from_the_speech_onset(metrics: ServerMetrics) -> None:
    clock = Clock()
    session = metrics.stream_session("live", clock=clock)
    stream_at_real_time(session, 6.0)
    session.speech_started(0, 0.51)  # in the frame that ends at 0.52 s, arrived at 1000.52
    session.speech_started(0, 1.5)  # a pause inside the same turn: not a new onset
    clock.now = 1001.2
    session.transcription_sent(turn=0, is_final=False, reason=None, has_text=False)
    assert value(metrics, "pulse_stt_first_transcript_seconds_count") == 0  # no words yet
    session.transcription_sent(turn=0, is_final=False, reason=None, has_text=True)
    session.transcription_sent(turn=0, is_final=True, reason="eou", has_text=True)
    assert value(metrics, "pulse_stt_first_transcript_seconds_count") == 1
    assert value(metrics, "pulse_stt_first_transcript_seconds_sum") == pytest.approx(0.68)
    # Turn 1 was noise: its empty final was never shown, and turn 2 had no onset of its
    # own (a long turn cut in two): neither may borrow turn 1's onset.
    session.speech_started(1, 3.0)
    session.transcription_sent(turn=1, is_final=True, reason="eou", has_text=False)
    session.transcription_sent(turn=2, is_final=False, reason=None, has_text=True)
    assert value(metrics, "pulse_stt_first_transcript_seconds_count") == 1


def test_finalize_latency_pairs_each_finalize_with_its_final(metrics: ServerMetrics) -> None:
    clock = Clock()
    session = metrics.stream_session("live", clock=clock)
    session.finalize_requested(1000.0)
    session.finalize_requested(1001.0)
    clock.now = 1000.4
    session.transcription_sent(turn=0, is_final=True, reason="eou", has_text=True)
    assert value(metrics, "pulse_stt_finalize_seconds_count") == 0  # not a finalize final
    session.transcription_sent(turn=1, is_final=True, reason="finalize", has_text=True)
    clock.now = 1001.3
    session.transcription_sent(turn=2, is_final=True, reason="finalize", has_text=False)
    assert value(metrics, "pulse_stt_finalize_seconds_count") == 2
    assert value(metrics, "pulse_stt_finalize_seconds_sum") == pytest.approx(0.4 + 0.3)
    assert value(metrics, "pulse_stt_finals_total", reason="finalize") == 2
    assert value(metrics, "pulse_stt_finals_total", reason="eou") == 1
    assert session.finals_sent == 3


def test_messages_and_errors_by_type(metrics: ServerMetrics) -> None:
    session = metrics.stream_session("live")
    session.vad_sent()
    session.error_sent("bad_audio")
    session.transcription_sent(turn=0, is_final=False, reason=None, has_text=True)
    session.transcription_sent(turn=0, is_final=True, reason="close", has_text=True)
    metrics.error("unauthorized")
    assert value(metrics, "pulse_stt_messages_total", type="vad") == 1
    assert value(metrics, "pulse_stt_messages_total", type="error") == 1
    assert value(metrics, "pulse_stt_messages_total", type="partial") == 1
    assert value(metrics, "pulse_stt_messages_total", type="final") == 1
    assert value(metrics, "pulse_stt_errors_total", kind="bad_audio") == 1
    assert value(metrics, "pulse_stt_errors_total", kind="unauthorized") == 1
    assert value(metrics, "pulse_stt_finals_total", reason="close") == 1
    assert session.messages_sent == 4
    metrics.rest_request(413, error="too_large", audio_seconds=0.0)
    assert value(metrics, "pulse_stt_errors_total", kind="too_large") == 1
    assert value(metrics, "pulse_stt_rest_requests_total", status="413") == 1


def test_decode_passes_and_queue_depth(metrics: ServerMetrics) -> None:
    metrics.observe_pass(PassReport("final", 3, 0.2, failed=False))
    metrics.observe_pass(PassReport("partial", 1, 0.05, failed=True))
    assert value(metrics, "pulse_stt_decode_pass_seconds_count", kind="final") == 1
    assert value(metrics, "pulse_stt_decode_pass_seconds_sum", kind="final") == 0.2
    assert value(metrics, "pulse_stt_decode_batch_size_sum", kind="final") == 3
    assert value(metrics, "pulse_stt_decode_pass_seconds_count", kind="partial") == 1
    assert value(metrics, "pulse_stt_decode_pass_failures_total", kind="partial") == 1
    assert value(metrics, "pulse_stt_decode_pass_failures_total", kind="final") == 0
    depth = QueueDepth(2, 5)
    metrics.watch_queue("pulse", lambda: depth)
    assert value(metrics, "pulse_stt_queue_depth", model="pulse", queue="finals") == 2
    depth = QueueDepth(0, 1)  # read at scrape time, not when watched
    assert value(metrics, "pulse_stt_queue_depth", model="pulse", queue="finals") == 0
    assert value(metrics, "pulse_stt_queue_depth", model="pulse", queue="background") == 1


def test_exposition_parses_and_lists_every_metric(metrics: ServerMetrics) -> None:
    metrics.watch_queue("pulse", lambda: QueueDepth(0, 0))
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name in (
        "pulse_stt_active_sessions",
        "pulse_stt_sessions",
        "pulse_stt_audio_seconds",
        "pulse_stt_messages",
        "pulse_stt_finals",
        "pulse_stt_errors",
        "pulse_stt_rest_requests",
        "pulse_stt_first_transcript_seconds",
        "pulse_stt_finalize_seconds",
        "pulse_stt_word_lag_seconds",
        "pulse_stt_decode_pass_seconds",
        "pulse_stt_decode_batch_size",
        "pulse_stt_queue_depth",
        "pulse_stt_build_info",
    ):
        assert name in families, name
    assert families["pulse_stt_word_lag_seconds"].type == "histogram"
    # Known label values are there at 0 before the first event, for rate() and alerts.
    errors = {s.labels["kind"] for s in families["pulse_stt_errors"].samples}
    assert {"bad_audio", "bad_message", "engine_error", "unauthorized"} <= errors


def test_arrivals_merge_bursts_and_forget_the_oldest() -> None:
    arrivals = AudioArrivals(merge_s=0.01, max_records=4)
    assert arrivals.arrival_of(0.0) is None
    arrivals.record(1.0, 10.0)
    arrivals.record(2.0, 10.005)  # same burst: extends the record
    assert len(arrivals) == 1
    assert arrivals.arrival_of(1.5) == 10.0
    for i in range(3, 8):
        arrivals.record(float(i), 10.0 + i)
    assert len(arrivals) == 4  # bounded
    assert arrivals.arrival_of(0.5) is None  # its frame is forgotten
    assert arrivals.arrival_of(4.5) == 15.0
    assert arrivals.arrival_of(7.0) == 17.0
    assert arrivals.arrival_of(9.0) == 17.0  # past the end: the last frame
    for i in range(8, 40):  # compaction keeps answers right
        arrivals.record(float(i), 10.0 + i)
    assert len(arrivals) == 4
    assert arrivals.arrival_of(38.5) == 49.0
    assert arrivals.arrival_of(30.0) is None
