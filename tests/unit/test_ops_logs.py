"""`pulse_stt.ops.logs` (JSON and text lines, secrets masked) and what a session logs."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from pulse_stt.api.params import parse_stream_params
from pulse_stt.api.websocket import StreamRunner
from pulse_stt.config import Settings
from pulse_stt.ops.logs import REDACTED, configure_logging
from pulse_stt.ops.metrics import ServerMetrics
from pulse_stt.protocol import FinalReason
from pulse_stt.store.db import ApiKey
from pulse_stt.stream.events import TranscriptEvent
from pulse_stt.text.format import TimedWord, Transcript

SECRET_TOKEN = "pstt_tok_s3cr3t-VALUE"


@pytest.fixture
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)


def emit_sample_lines(stream: io.StringIO) -> list[str]:
    session_log = logging.getLogger("pulse_stt.api.websocket")
    session_log.info("session started", extra={"session_id": "s-1", "sample_rate": 16000})
    try:
        raise ValueError("boom")
    except ValueError:
        session_log.exception("session failed", extra={"session_id": "s-1"})
    session_log.debug("not at info level")
    # How uvicorn logs a WebSocket handshake: the path with its query string, as an argument.
    logging.getLogger("uvicorn.error").info(
        '%s - "WebSocket %s" [accepted]',
        "127.0.0.1:5555",
        f"/waves/v1/stt/live?token={SECRET_TOKEN}&keywords=Kubernetes:5&model=pulse",
        extra={"color_message": "\x1b[1mcoloured\x1b[0m"},
    )
    return stream.getvalue().splitlines()


@pytest.mark.usefixtures("restore_root_logger")
def test_json_lines() -> None:
    stream = io.StringIO()
    configure_logging(level="info", log_format="json", stream=stream)
    lines = emit_sample_lines(stream)
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert len(records) == 3  # the debug line is below the level
    started, failed, handshake = records
    for record in records:
        assert {"timestamp", "level", "logger", "message"} <= record.keys()
        datetime.fromisoformat(record["timestamp"])
    assert started == {
        "level": "INFO",
        "logger": "pulse_stt.api.websocket",
        "message": "session started",
        "session_id": "s-1",
        "sample_rate": 16000,
        "timestamp": started["timestamp"],
    }
    assert failed["level"] == "ERROR" and failed["session_id"] == "s-1"
    assert "Traceback" in failed["exc_info"] and "ValueError: boom" in failed["exc_info"]
    assert handshake["logger"] == "uvicorn.error"
    assert SECRET_TOKEN not in lines[2]
    assert f"token={REDACTED}&keywords=Kubernetes:5&model=pulse" in handshake["message"]
    assert "color_message" not in handshake


@pytest.mark.usefixtures("restore_root_logger")
def test_text_lines_keep_context_fields() -> None:
    stream = io.StringIO()
    configure_logging(level="info", log_format="text", stream=stream)
    lines = emit_sample_lines(stream)
    assert lines[0].endswith("INFO pulse_stt.api.websocket: session started session_id='s-1' "
                             "sample_rate=16000")  # fmt: skip
    assert lines[1].endswith("session failed session_id='s-1'")
    assert lines[2] == "Traceback (most recent call last):"
    assert not any(SECRET_TOKEN in line for line in lines)
    assert lines[-1].endswith(f'"WebSocket /waves/v1/stt/live?token={REDACTED}&keywords='
                              'Kubernetes:5&model=pulse" [accepted]')  # fmt: skip


def runner(settings: Settings) -> StreamRunner:
    ctx = SimpleNamespace(
        settings=settings,
        itn=None,
        speaker_encoder=None,
        metrics=ServerMetrics(),
        engine=None,
        dsp_pool=None,
        speaker_pool=None,
    )
    params = parse_stream_params(
        {"model": "pulse", "language": "en", "sample_rate": "16000", "encoding": "linear16"},
        legacy_path=False,
    )
    key = ApiKey(7, "test", "pstt_abc", datetime.now(UTC), None)
    return StreamRunner(ctx, None, params, key, "/waves/v1/stt/live")  # type: ignore[arg-type]


def send_a_final(session: StreamRunner, text: str) -> None:
    words = (TimedWord("hello", 0.1, 0.4, 0.9),)
    transcript = Transcript(text, words, (), "en", ("en",))
    session._sent(TranscriptEvent(0, transcript, True, FinalReason.EOU, timed_words=words))


@pytest.mark.parametrize("log_transcripts", [False, True])
def test_a_session_logs_its_transcript_only_when_the_operator_asks(
    caplog: pytest.LogCaptureFixture, log_transcripts: bool
) -> None:
    caplog.set_level(logging.INFO, logger="pulse_stt")
    session = runner(Settings(log_transcripts=log_transcripts, data_dir="/nonexistent"))
    text = "the quick brown fox jumps over the lazy dog"
    session._log_start()
    send_a_final(session, text)
    session._log_end()
    records = [r for r in caplog.records if r.name == "pulse_stt.api.websocket"]
    assert all(getattr(r, "session_id", None) == session.session_id for r in records)
    started = next(r for r in records if r.getMessage() == "session started")
    assert (started.encoding, started.sample_rate, started.language) == ("linear16", 16000, "en")
    ended = next(r for r in records if r.getMessage() == "session ended")
    assert ended.finals == 1 and ended.messages == 1
    carrying_text = [r for r in records if text in r.getMessage() or text in str(vars(r))]
    if log_transcripts:
        assert len(carrying_text) == 1
        final = carrying_text[0]
        assert final.getMessage() == "final" and final.transcript == text
    else:
        assert carrying_text == []


@pytest.mark.usefixtures("restore_root_logger")
def test_a_library_with_its_own_handler_logs_through_ours(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import nemo_text_processing.utils.logging  # noqa: F401  (gives its logger a handler)

    stream = io.StringIO()
    configure_logging(level="warning", log_format="json", stream=stream)
    nemo = logging.getLogger("NeMo-text-processing")
    nemo.info("grammar restored")  # below the operator's level now
    nemo.warning("grammar missing")
    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["grammar missing"]
    captured = capsys.readouterr()
    assert "grammar" not in captured.err + captured.out  # no second, unformatted copy
