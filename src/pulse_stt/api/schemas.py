"""Wire JSON, built in one place from typed results."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse

from pulse_stt.protocol import ErrorKind, TextOptions
from pulse_stt.stream.events import (
    ErrorEvent,
    LiveEvent,
    PongEvent,
    TranscriptEvent,
    WarningEvent,
)
from pulse_stt.text.format import TimedWord, Transcript, Utterance


def _word(word: TimedWord, options: TextOptions, channel: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "word": word.text,
        "start": word.start,
        "end": word.end,
        "confidence": word.confidence,
    }
    if options.diarize and word.speaker is not None:
        out["speaker"] = word.speaker
        out["speaker_confidence"] = word.speaker_confidence
    if channel is not None:  # multichannel: speakers are numbered within their channel
        out["channel"] = channel
    return out


def _utterance(
    utterance: Utterance, options: TextOptions, channel: int | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"text": utterance.text, "start": utterance.start, "end": utterance.end}
    if options.diarize and utterance.speaker is not None:
        out["speaker"] = utterance.speaker
    if channel is not None:
        out["channel"] = channel
    return out


def transcription_message(
    *,
    session_id: str,
    transcript: Transcript,
    options: TextOptions,
    is_final: bool,
    is_last: bool = False,
    from_finalize: bool = False,
    speech_final: bool = False,
    full_transcript: str | None = None,
    channel: int | None = None,
) -> dict[str, Any]:
    """`channel` (a stream of several channels): on the message and each word/utterance."""
    message: dict[str, Any] = {
        "type": "transcription",
        "status": "success",
        "session_id": session_id,
        "transcript": transcript.text,
        "transcription": transcript.text,
        "is_final": is_final,
        "is_last": is_last,
        "from_finalize": from_finalize,
        "speech_final": speech_final,
        "language": transcript.language,
        "languages": list(transcript.languages),
    }
    if channel is not None:
        message["channel"] = channel
    if options.word_timestamps:
        message["words"] = [_word(w, options, channel) for w in transcript.words]
    if options.sentence_timestamps:
        message["utterances"] = [_utterance(u, options, channel) for u in transcript.utterances]
    if options.redact_pii or options.redact_pci:
        message["redacted_entities"] = list(transcript.redacted_entities)
    if full_transcript is not None:
        message["full_transcript"] = full_transcript
    return message


def vad_message(
    kind: str, session_id: str, timestamp: float, channel: int | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {"type": kind, "session_id": session_id, "timestamp": timestamp}
    if channel is not None:
        message["channel"] = channel
    return message


def pong_message(session_id: str) -> dict[str, Any]:
    return {"type": "pong", "session_id": session_id}


def warning_message(kind: str, message: str, session_id: str) -> dict[str, Any]:
    # No `error` key: LiveKit's plugin treats any message with one as fatal.
    return {
        "type": "warning",
        "status": "warning",
        "warning": kind,
        "message": message,
        "session_id": session_id,
    }


def error_message(
    message: str, *, error: ErrorKind, session_id: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": "error", "status": "error", "error": error, "message": message}
    if session_id:
        body["session_id"] = session_id
    return body


def event_message(event: LiveEvent, session_id: str, options: TextOptions) -> dict[str, Any]:
    """The wire message of one event of a live stream."""
    if isinstance(event, TranscriptEvent):
        return transcription_message(
            session_id=session_id,
            transcript=event.transcript,
            options=options,
            is_final=event.is_final,
            is_last=event.is_last,
            from_finalize=event.from_finalize,
            speech_final=event.speech_final,
            full_transcript=event.full_transcript,
            channel=event.channel,
        )
    if isinstance(event, ErrorEvent):
        return error_message(event.message, error=event.kind, session_id=session_id)
    if isinstance(event, PongEvent):
        return pong_message(session_id)
    if isinstance(event, WarningEvent):
        return warning_message(event.kind, event.message, session_id)
    return vad_message(event.kind, session_id, event.timestamp, event.channel)


@dataclass(frozen=True)
class FileStats:
    """How a whole-file request went: the SDK's metadata fields that we can compute."""

    processing_s: float  # the audio in hand -> the transcript ready (decode, queue, model)
    num_chunks: int  # turns decoded
    filename: str | None = None  # from a JSON url or a Content-Disposition header


def _file_metadata(duration: float, file_size: int, stats: FileStats | None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"duration": round(duration, 3), "fileSize": file_size}
    if stats is not None:
        metadata["processing_time_ms"] = round(stats.processing_s * 1000, 1)
        metadata["rtfx"] = round(duration / stats.processing_s, 2) if stats.processing_s else None
        metadata["num_chunks"] = stats.num_chunks
        if stats.filename:
            metadata["filename"] = stats.filename
    return metadata


def file_response(
    transcripts: list[Transcript],
    *,
    options: TextOptions,
    language: str | None,
    duration: float,
    file_size: int,
    stats: FileStats | None = None,
    channels: list[int] | None = None,
    num_channels: int = 1,
) -> dict[str, Any]:
    """REST body: `word_timestamps` gates both `words` and `utterances`.

    `channels` (multichannel=true): each transcript's channel, the transcripts in time
    order; every word and utterance then carries its `channel`, and `channels` lists each
    channel's own transcription."""
    body: dict[str, Any] = {
        "status": "success",
        "transcription": " ".join(t.text for t in transcripts if t.text),
        "language": language,
        "metadata": _file_metadata(duration, file_size, stats),
    }
    if channels is not None:
        body["metadata"]["channels"] = num_channels
        body["channels"] = [
            {
                "channel": c,
                "transcription": " ".join(
                    t.text
                    for t, tc in zip(transcripts, channels, strict=True)
                    if tc == c and t.text
                ),
            }
            for c in range(num_channels)
        ]
    if options.redact_pii or options.redact_pci:
        body["redacted_entities"] = list(
            dict.fromkeys(e for t in transcripts for e in t.redacted_entities)
        )
    if options.word_timestamps:
        tags: list[int | None] = (
            list(channels) if channels is not None else [None] * len(transcripts)
        )
        body["words"] = [
            _word(w, options, c) for t, c in zip(transcripts, tags, strict=True) for w in t.words
        ]
        body["utterances"] = [
            _utterance(u, options, c)
            for t, c in zip(transcripts, tags, strict=True)
            for u in t.utterances
        ]
    return body


def rest_error(status: int, error: ErrorKind, message: str) -> JSONResponse:
    return JSONResponse({"status": "error", "error": error, "message": message}, status_code=status)


STORE_RETRY_AFTER_S = 5
STORE_UNAVAILABLE_BODY = {
    "status": "error",
    "error": ErrorKind.STORE_UNAVAILABLE,
    "message": "the key store (database) is unreachable right now, so credentials cannot "
    f"be checked; retry in a few seconds (after {STORE_RETRY_AFTER_S} s).",
}


def store_unavailable_response() -> JSONResponse:
    """503 + Retry-After for a request (or a WebSocket handshake) that needs the store."""
    return JSONResponse(
        STORE_UNAVAILABLE_BODY, status_code=503, headers={"Retry-After": str(STORE_RETRY_AFTER_S)}
    )
