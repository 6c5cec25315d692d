"""Typed request options → the query string of PROTOCOL.md.

Every parameter is optional: `None` leaves it out so the server's default applies
(the hosted API and pulse-stt share defaults). Values are checked lightly here, so an
obvious mistake fails before any connection with a `ParameterError` naming the parameter;
the server stays the authority on everything else (e.g. which languages exist).
`extra` passes parameters this client does not know yet.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Literal
from urllib.parse import urlencode

from pulse_stt.client.errors import ParameterError
from pulse_stt.protocol import (
    ENCODINGS,
    EXTERNAL_ID_RE,
    MAX_KEYWORDS,
    MODEL_RATE,
    NUMERALS,
    SAMPLE_RATES,
    Encoding,
)

STREAM_MODELS: tuple[str, ...] = ("pulse",)
FILE_MODELS: tuple[str, ...] = ("pulse", "pulse-pro")

# `keywords` as the wire string, a list of entries ("word" or "word:6"), or a mapping of
# phrase → intensifier.
Keywords = str | Iterable[str] | Mapping[str, float]


def _wire(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _opt_wire(value: object) -> str | None:
    return None if value is None else _wire(value)


def keywords_param(keywords: Keywords) -> str:
    """The `keywords` wire value: `word[:INTENSIFIER],phrase with spaces[:X],...`."""
    if isinstance(keywords, str):
        entries = [e.strip() for e in keywords.split(",") if e.strip()]
    elif isinstance(keywords, Mapping):
        entries = []
        for phrase, intensifier in keywords.items():
            _check_intensifier(phrase, intensifier)
            entries.append(f"{phrase}:{intensifier:g}")
    else:
        entries = [str(e).strip() for e in keywords if str(e).strip()]
    if len(entries) > MAX_KEYWORDS:
        raise ParameterError(
            "keywords", f"{len(entries)} keywords given; at most {MAX_KEYWORDS} are allowed."
        )
    for entry in entries:
        phrase, sep, boost = entry.rpartition(":")
        if sep and not phrase.strip():
            raise ParameterError(
                "keywords", f"entry {entry!r} has no word before ':'; use word or word:6."
            )
        if sep:
            try:
                value = float(boost)
            except ValueError:
                raise ParameterError(
                    "keywords", f"entry {entry!r}: {boost!r} is not a number.", "0..20"
                ) from None
            _check_intensifier(phrase, value)
    return ",".join(entries)


def _check_intensifier(phrase: str, intensifier: float) -> None:
    if not 0 <= intensifier <= 20:
        raise ParameterError(
            "keywords", f"{phrase!r}: intensifier must be from 0 to 20, got {intensifier}.", "0..20"
        )


def _check_choice(name: str, value: object, allowed: Iterable[object]) -> None:
    allowed = tuple(allowed)
    if value is not None and value not in allowed:
        listed = ", ".join(str(a) for a in allowed)
        raise ParameterError(name, f"{name} must be one of {listed}; got {value!r}.", listed)


def _check_language(language: str | None) -> None:
    if language is not None and not re.fullmatch(r"[A-Za-z]{2,8}(-[A-Za-z0-9]{2,8})*", language):
        raise ParameterError(
            "language",
            f"language must be an ISO 639-1 code (en, de, …), 'multi-eu' or 'multi'; "
            f"got {language!r}.",
        )


@dataclass(frozen=True, kw_only=True)
class _Options:
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_query(self) -> dict[str, str]:
        """The parameters that are set, as wire strings (booleans as true/false)."""
        query: dict[str, str] = {}
        for spec in fields(self):
            value = getattr(self, spec.name)
            if spec.name == "extra" or value is None:
                continue
            if spec.name == "keywords":
                value = keywords_param(value)
                if not value:
                    continue
            query[spec.name] = _wire(value)
        query.update({k: _wire(v) for k, v in self.extra.items()})
        return query

    def query_string(self) -> str:
        return urlencode(self.to_query())


@dataclass(frozen=True, kw_only=True)
class StreamOptions(_Options):
    """Parameters of a streaming session (`/waves/v1/stt/live`).

    `encoding` and `sample_rate` describe the bytes you send (the file and microphone
    helpers send 16 kHz `linear16`, the defaults).
    """

    model: str = "pulse"
    language: str | None = None
    encoding: Encoding = "linear16"
    sample_rate: int = MODEL_RATE
    word_timestamps: bool | None = None
    sentence_timestamps: bool | None = None
    diarize: bool | None = None
    redact_pii: bool | None = None
    redact_pci: bool | None = None
    numerals: Literal["auto", "true", "false"] | bool | None = None
    itn_normalize: bool | None = None
    format: bool | None = None
    punctuate: bool | None = None
    capitalize: bool | None = None
    eou_timeout_ms: int | None = None
    finalize_on_words: bool | None = None
    max_words: int | None = None
    keywords: Keywords | None = None
    vad_events: bool | None = None
    full_transcript: bool | None = None
    external_session_id: str | None = None
    channels: int | None = None  # interleaved channels per frame (pulse-stt extension)

    def __post_init__(self) -> None:
        _check_choice("model", self.model, STREAM_MODELS)
        _check_language(self.language)
        _check_choice("encoding", self.encoding, ENCODINGS)
        _check_choice("sample_rate", self.sample_rate, SAMPLE_RATES)
        _check_choice("numerals", _opt_wire(self.numerals), NUMERALS)
        if self.eou_timeout_ms is not None and not 100 <= self.eou_timeout_ms <= 10_000:
            raise ParameterError(
                "eou_timeout_ms",
                f"eou_timeout_ms must be from 100 to 10000; got {self.eou_timeout_ms}.",
                "100..10000",
            )
        if self.max_words is not None and self.max_words < 1:
            raise ParameterError(
                "max_words", f"max_words must be a positive integer; got {self.max_words}."
            )
        if self.keywords is not None:
            keywords_param(self.keywords)
        if self.external_session_id is not None and not EXTERNAL_ID_RE.fullmatch(
            self.external_session_id
        ):
            raise ParameterError(
                "external_session_id",
                "external_session_id must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '.' "
                "or '-'.",
            )


@dataclass(frozen=True, kw_only=True)
class FileOptions(_Options):
    """Parameters of a whole-file request (`POST /waves/v1/stt/`).

    `word_timestamps=true` adds `words` and `utterances` to the result.
    """

    model: str = "pulse"
    language: str | None = None
    word_timestamps: bool | None = None
    diarize: bool | None = None
    redact_pii: bool | None = None
    redact_pci: bool | None = None
    numerals: Literal["auto", "true", "false"] | bool | None = None
    itn_normalize: bool | None = None
    format: bool | None = None
    punctuate: bool | None = None
    capitalize: bool | None = None
    multichannel: bool | None = None  # each channel on its own (pulse-stt extension)

    def __post_init__(self) -> None:
        _check_choice("model", self.model, FILE_MODELS)
        _check_language(self.language)
        _check_choice("numerals", _opt_wire(self.numerals), NUMERALS)
