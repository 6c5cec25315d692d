"""Client: typed messages from the wire JSON of PROTOCOL.md, REST results, typed errors."""

from __future__ import annotations

import json

import pytest

from pulse_stt.client import (
    AuthenticationError,
    FileResult,
    ParameterError,
    PulseError,
    ServerError,
    SpeechEvent,
    Transcription,
    UnknownMessage,
    Utterance,
    Word,
    parse_message,
)
from pulse_stt.client.errors import error_from_response

# The server → client example of PROTOCOL.md, verbatim.
FINAL = {
    "type": "transcription",
    "status": "success",
    "session_id": "6f1c",
    "transcript": "Hi, how are you doing?",
    "transcription": "Hi, how are you doing?",
    "is_final": True,
    "is_last": False,
    "from_finalize": False,
    "language": "en",
    "languages": ["en"],
    "words": [
        {
            "word": "Hi,",
            "start": 0.48,
            "end": 0.71,
            "confidence": 0.97,
            "speaker": 0,
            "speaker_confidence": 0.91,
        }
    ],
    "utterances": [{"text": "Hi, how are you doing?", "start": 0.48, "end": 1.9, "speaker": 0}],
    "redacted_entities": ["[FIRSTNAME_1]"],
    "full_transcript": "...",
}


def test_a_final_with_every_field_is_typed() -> None:
    message = parse_message(FINAL)
    assert isinstance(message, Transcription)
    assert message.session_id == "6f1c"
    assert message.transcript == "Hi, how are you doing?"
    assert (message.is_final, message.is_last, message.from_finalize) == (True, False, False)
    assert message.language == "en" and message.languages == ("en",)
    assert message.words == (Word("Hi,", 0.48, 0.71, 0.97, 0, 0.91),)
    assert message.utterances == (Utterance("Hi, how are you doing?", 0.48, 1.9, 0),)
    assert message.redacted_entities == ("[FIRSTNAME_1]",)
    assert message.full_transcript == "..."
    assert message.raw == FINAL


def test_json_text_and_bytes_parse_the_same() -> None:
    assert parse_message(json.dumps(FINAL)) == parse_message(FINAL)
    assert parse_message(json.dumps(FINAL).encode()) == parse_message(FINAL)


def test_unknown_fields_are_kept_in_raw_and_missing_ones_get_defaults() -> None:
    message = parse_message(
        {"type": "transcription", "transcript": "ok", "is_final": False, "new_field": [1, 2]}
    )
    assert isinstance(message, Transcription)
    assert message.raw["new_field"] == [1, 2]
    assert message.words == () and message.utterances == () and message.languages == ()
    assert message.session_id is None and message.full_transcript is None
    assert not message.is_last and not message.from_finalize


def test_hosted_api_variants_are_understood() -> None:
    # only `transcription`; no `type`; utterances with `transcript`
    legacy = parse_message(
        {
            "transcription": "hello there",
            "is_final": True,
            "utterances": [{"transcript": "hello there", "start": 0, "end": 1.2}],
        }
    )
    assert isinstance(legacy, Transcription)
    assert legacy.transcript == "hello there"
    assert legacy.utterances == (Utterance("hello there", 0.0, 1.2),)


def test_speech_events_errors_and_unknown_types() -> None:
    started = parse_message({"type": "speech_started", "session_id": "s", "timestamp": 1.84})
    assert started == SpeechEvent("speech_started", "s", 1.84) and started.started
    ended = parse_message({"type": "speech_ended", "session_id": "s", "timestamp": 4.52})
    assert isinstance(ended, SpeechEvent) and not ended.started
    error = parse_message({"type": "error", "status": "error", "message": "send JSON"})
    assert error == ServerError("send JSON")
    future = parse_message({"type": "speaker_changed", "speaker": 3})
    assert isinstance(future, UnknownMessage)
    assert future.type == "speaker_changed" and future.raw["speaker"] == 3


@pytest.mark.parametrize("frame", ["not json", "[1, 2]", b"\xff"])
def test_frames_that_are_not_json_objects_raise_value_error(frame: str | bytes) -> None:
    with pytest.raises(ValueError, match="not"):
        parse_message(frame)


def test_rest_body_and_a_stream_give_the_same_result_shape() -> None:
    body = {
        "status": "success",
        "transcription": "One. Two.",
        "words": [{"word": "One.", "start": 0.1, "end": 0.4, "confidence": 0.9}],
        "utterances": [{"text": "One.", "start": 0.1, "end": 0.4}],
        "language": "en",
        "metadata": {"duration": 12.3, "fileSize": 394240},
    }
    result = FileResult.from_dict(body)
    assert result.transcription == "One. Two."
    assert result.duration == 12.3 and result.file_size == 394240
    assert result.words[0] == Word("One.", 0.1, 0.4, 0.9)
    assert result.to_dict() == body

    first = Transcription.from_dict({**FINAL, "transcript": "One.", "language": "en"})
    empty = Transcription.from_dict({**FINAL, "transcript": "", "words": [], "language": "fr"})
    second = Transcription.from_dict({**FINAL, "transcript": "Two.", "language": "en"})
    streamed = FileResult.from_finals([first, empty, second], duration=3.0)
    assert streamed.transcription == "One. Two."
    assert streamed.language == "en"  # empty finals do not vote
    assert len(streamed.words) == 2 and streamed.redacted_entities == ("[FIRSTNAME_1]",)
    wire = streamed.to_dict()
    assert wire["transcription"] == "One. Two." and wire["metadata"]["duration"] == 3.0
    assert wire["words"][0] == {
        "word": "Hi,",
        "start": 0.48,
        "end": 0.71,
        "confidence": 0.97,
        "speaker": 0,
        "speaker_confidence": 0.91,
    }


def test_http_refusals_become_typed_errors() -> None:
    unauthorized = error_from_response(
        401, b'{"status":"error","error":"unauthorized","message":"bad key"}', url="u"
    )
    assert isinstance(unauthorized, AuthenticationError)
    assert unauthorized.status_code == 401 and unauthorized.message == "bad key"

    bad_param = error_from_response(
        400,
        json.dumps({"status": "error", "param": "language", "message": "no", "allowed": "en"}),
        url="u",
    )
    assert isinstance(bad_param, ParameterError) and isinstance(bad_param, ValueError)
    assert (bad_param.param, bad_param.allowed, bad_param.status_code) == ("language", "en", 400)
    assert "language" in str(bad_param)

    too_large = error_from_response(413, b'{"error":"too_large","message":"over"}', url="u")
    assert type(too_large) is PulseError
    assert (too_large.status_code, too_large.error, too_large.message) == (413, "too_large", "over")

    proxy_page = error_from_response(502, b"<html>Bad Gateway</html>", url="u")
    assert proxy_page.status_code == 502 and "Bad Gateway" in proxy_page.message
