"""Typed server messages (PROTOCOL.md, "Server → client") and REST results.

Parsing is tolerant: unknown fields are kept in `raw` and otherwise ignored, missing
optional fields get defaults, and a message of an unknown `type` becomes an
`UnknownMessage` rather than an error, so a newer server never breaks an older client.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def _float(value: Any, default: float = 0.0) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _opt_float(value: Any) -> float | None:
    return None if value is None else _float(value)


def _opt_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Word:
    """One word with its time span in seconds from the first audio byte."""

    word: str
    start: float
    end: float
    confidence: float | None = None
    speaker: int | None = None
    speaker_confidence: float | None = None
    channel: int | None = None  # multichannel=true / channels=N (pulse-stt extension)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Word:
        return cls(
            word=str(data.get("word") or data.get("text") or ""),
            start=_float(data.get("start")),
            end=_float(data.get("end")),
            confidence=_opt_float(data.get("confidence")),
            speaker=_opt_int(data.get("speaker")),
            speaker_confidence=_opt_float(data.get("speaker_confidence")),
            channel=_opt_int(data.get("channel")),
        )


@dataclass(frozen=True)
class Utterance:
    """One sentence (or one speaker's stretch) with its time span."""

    text: str
    start: float
    end: float
    speaker: int | None = None
    channel: int | None = None  # multichannel=true / channels=N (pulse-stt extension)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Utterance:
        # The hosted API documents `utterances[].transcript`; pulse-stt sends `text`.
        return cls(
            text=str(data.get("text") or data.get("transcript") or ""),
            start=_float(data.get("start")),
            end=_float(data.get("end")),
            speaker=_opt_int(data.get("speaker")),
            channel=_opt_int(data.get("channel")),
        )


def _words(data: Mapping[str, Any]) -> tuple[Word, ...]:
    items = data.get("words") or ()
    return tuple(Word.from_dict(w) for w in items if isinstance(w, Mapping))


def _utterances(data: Mapping[str, Any]) -> tuple[Utterance, ...]:
    items = data.get("utterances") or ()
    return tuple(Utterance.from_dict(u) for u in items if isinstance(u, Mapping))


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        return ()
    return tuple(str(v) for v in value)


@dataclass(frozen=True)
class Transcription:
    """A partial (`is_final=False`) or final transcript of the current turn.

    `is_last` marks the terminal message after `close_stream`; `from_finalize` the one
    final owed to a `finalize`. `words` needs `word_timestamps=true`, `utterances`
    `sentence_timestamps=true`, `full_transcript` `full_transcript=true`.
    """

    session_id: str | None
    transcript: str
    is_final: bool
    is_last: bool = False
    from_finalize: bool = False
    language: str | None = None
    languages: tuple[str, ...] = ()
    words: tuple[Word, ...] = ()
    utterances: tuple[Utterance, ...] = ()
    full_transcript: str | None = None
    redacted_entities: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    type: str = "transcription"
    channel: int | None = None  # a stream opened with channels=N (pulse-stt extension)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transcription:
        text = data.get("transcript")
        if text is None:
            text = data.get("transcription")
        full = data.get("full_transcript")
        return cls(
            session_id=_opt_str(data.get("session_id")),
            transcript=str(text or ""),
            is_final=bool(data.get("is_final", False)),
            is_last=bool(data.get("is_last", False)),
            from_finalize=bool(data.get("from_finalize", False)),
            language=_opt_str(data.get("language")),
            languages=_strings(data.get("languages")),
            words=_words(data),
            utterances=_utterances(data),
            full_transcript=None if full is None else str(full),
            redacted_entities=_strings(data.get("redacted_entities")),
            raw=dict(data),
            channel=_opt_int(data.get("channel")),
        )


@dataclass(frozen=True)
class SpeechEvent:
    """`speech_started` / `speech_ended` (with `vad_events=true`); `timestamp` in seconds."""

    type: str
    session_id: str | None
    timestamp: float
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def started(self) -> bool:
        return self.type == "speech_started"


@dataclass(frozen=True)
class ServerError:
    """An `error` message inside an open stream; the session continues after it."""

    message: str
    error: str | None = None
    session_id: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    type: str = "error"


@dataclass(frozen=True)
class UnknownMessage:
    """A message of a type this client does not know; kept whole in `raw`."""

    type: str
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


Message = Transcription | SpeechEvent | ServerError | UnknownMessage


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def parse_message(data: Mapping[str, Any] | str | bytes) -> Message:
    """One server message (a dict, or the JSON text of a frame) as a typed object.

    Raises ValueError only for text that is not a JSON object.
    """
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise ValueError(f"the server sent a frame that is not JSON: {exc}") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"the server sent JSON that is not an object: {data!r:.200}")
    kind = data.get("type")
    if kind == "transcription" or (
        kind in (None, "transcriptionResponse") and ("transcript" in data or "is_final" in data)
    ):
        return Transcription.from_dict(data)
    if kind in ("speech_started", "speech_ended"):
        return SpeechEvent(
            type=kind,
            session_id=_opt_str(data.get("session_id")),
            timestamp=_float(data.get("timestamp")),
            raw=dict(data),
        )
    if kind == "error" or (kind is None and data.get("status") == "error"):
        return ServerError(
            message=str(data.get("message") or "the server reported an error"),
            error=_opt_str(data.get("error")),
            session_id=_opt_str(data.get("session_id")),
            raw=dict(data),
        )
    return UnknownMessage(type=str(kind), raw=dict(data))


@dataclass(frozen=True)
class FileResult:
    """A whole-file transcription (REST response), or the same shape built from a stream.

    `words` and `utterances` need `word_timestamps=true`; `duration` is the audio's length
    in seconds and `file_size` the bytes sent (None when unknown).
    """

    transcription: str
    words: tuple[Word, ...] = ()
    utterances: tuple[Utterance, ...] = ()
    language: str | None = None
    duration: float | None = None
    file_size: int | None = None
    redacted_entities: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileResult:
        metadata = data.get("metadata")
        if not isinstance(metadata, Mapping):
            metadata = {}
        text = data.get("transcription")
        if text is None:
            text = data.get("transcript")
        return cls(
            transcription=str(text or ""),
            words=_words(data),
            utterances=_utterances(data),
            language=_opt_str(data.get("language")),
            duration=_opt_float(metadata.get("duration")),
            file_size=_opt_int(metadata.get("fileSize")),
            redacted_entities=_strings(data.get("redacted_entities")),
            raw=dict(data),
        )

    @classmethod
    def from_finals(
        cls, finals: Sequence[Transcription], *, duration: float | None = None
    ) -> FileResult:
        """The REST shape from a stream's finals (used by `transcribe --mode stream`)."""
        languages = [f.language for f in finals if f.transcript and f.language]
        language = max(set(languages), key=languages.count) if languages else None
        words = tuple(w for f in finals for w in f.words)
        utterances = tuple(u for f in finals for u in f.utterances)
        entities = tuple(dict.fromkeys(e for f in finals for e in f.redacted_entities))
        return cls(
            transcription=" ".join(f.transcript for f in finals if f.transcript),
            words=words,
            utterances=utterances,
            language=language,
            duration=duration,
            redacted_entities=entities,
        )

    def to_dict(self) -> dict[str, Any]:
        """The wire shape: the server's own body when there was one."""
        if self.raw:
            return dict(self.raw)
        return _file_dict(
            self.transcription,
            self.words,
            self.utterances,
            self.language,
            self.duration,
            self.redacted_entities,
        )


def _file_dict(
    text: str,
    words: Sequence[Word],
    utterances: Sequence[Utterance],
    language: str | None,
    duration: float | None,
    entities: Sequence[str],
) -> dict[str, Any]:
    body: dict[str, Any] = {"status": "success", "transcription": text, "language": language}
    body["metadata"] = {"duration": None if duration is None else round(duration, 3)}
    if words:
        body["words"] = [_drop_none(w.__dict__) for w in words]
    if utterances:
        body["utterances"] = [_drop_none(u.__dict__) for u in utterances]
    if entities:
        body["redacted_entities"] = list(entities)
    return body


def _drop_none(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class BrowserToken:
    """A short-lived token minted with an API key (`POST /v1/tokens`, pulse-stt only) for a
    browser, which cannot set headers on a WebSocket. It acts for the key until
    `expires_at` (ISO 8601, UTC)."""

    token: str
    expires_at: str
    expires_in: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BrowserToken:
        return cls(
            token=str(data.get("token") or ""),
            expires_at=str(data.get("expires_at") or ""),
            expires_in=_opt_int(data.get("expires_in")) or 0,
        )
