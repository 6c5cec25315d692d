"""Query parameters, parsed once at the edge into the typed, validated options of
`pulse_stt.protocol`.

Unknown parameters are ignored (forward compatibility); an invalid value of a known one is a
`ParamError` that names the parameter and what to send instead.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import cast
from urllib.parse import urlsplit

from pulse_stt.protocol import (
    ENCODINGS,
    ENGLISH_ONLY_MODELS,
    EXTERNAL_ID_RE,
    INTERLEAVED_ENCODINGS,
    MAX_CHANNELS,
    MAX_KEYWORDS,
    MODEL_RATE,
    MULTI_ASIAN_LANGUAGES,
    MULTI_EU_LANGUAGES,
    MULTI_INDIC_LANGUAGES,
    NUMERALS,
    PCI_ENTITIES,
    PII_ENTITIES,
    REDACT_ALIASES,
    SAMPLE_RATES,
    Encoding,
    ErrorKind,
    FileParams,
    Keyword,
    LanguageChoice,
    Numerals,
    RedactEntity,
    StreamParams,
    TextOptions,
    Webhook,
)

PULSE_PRO_STREAMING_MESSAGE = (
    "Pulse Pro has no streaming transport. Use POST /waves/v1/stt/?model=pulse-pro instead."
)


@functools.cache
def whisper_languages() -> tuple[str, ...]:
    """The language codes the model knows. faster_whisper is imported here, on first use,
    not at import time, so the client can share this module's constants cheaply."""
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    return tuple(_LANGUAGE_CODES)


class ParamError(ValueError):
    """A query parameter with a value we cannot accept."""

    def __init__(self, param: str, message: str, allowed: str | None = None) -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.allowed = allowed

    def to_json(self) -> dict[str, str]:
        body = {"status": "error", "error": ErrorKind.INVALID_PARAMETER, "param": self.param}
        body["message"] = self.message
        if self.allowed:
            body["allowed"] = self.allowed
        return body


def _bool(query: Mapping[str, str], name: str, default: bool) -> bool:
    raw = query.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    raise ParamError(name, f"{name} must be 'true' or 'false', got {raw!r}.", "true, false")


def _int(query: Mapping[str, str], name: str, default: int | None, lo: int, hi: int) -> int | None:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ParamError(
            name, f"{name} must be an integer from {lo} to {hi}, got {raw!r}.", f"{lo}..{hi}"
        ) from None
    if not lo <= value <= hi:
        raise ParamError(
            name, f"{name} must be an integer from {lo} to {hi}, got {value}.", f"{lo}..{hi}"
        )
    return value


def _fraction(query: Mapping[str, str], name: str) -> float | None:
    """A number from 0 to 1 (a probability), or None when not given."""
    raw = query.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:  # NaN fails this too
        raise ParamError(name, f"{name} must be a number from 0 to 1, got {raw!r}.", "0..1")
    return value


def _choice(query: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    raw = query.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value not in allowed:
        listed = ", ".join(allowed)
        raise ParamError(name, f"{name} must be one of {listed}; got {raw!r}.", listed)
    return value


LANGUAGE_GROUPS: dict[str, tuple[str, ...]] = {
    "multi-eu": MULTI_EU_LANGUAGES,
    "multi-indic": MULTI_INDIC_LANGUAGES,
    "multi-asian": MULTI_ASIAN_LANGUAGES,
}
STREAMING_MODELS = ("pulse", *ENGLISH_ONLY_MODELS)
FILE_MODELS = ("pulse", "pulse-pro", *ENGLISH_ONLY_MODELS)
# Accepted for compatibility, validated, and without effect here (docs/PROTOCOL.md): the
# emotion and gender models are not shipped; finals are never held back (no_format_delay).
ACCEPTED_FLAGS = ("emotion_detection", "gender_detection", "no_format_delay")
MAX_WEBHOOK_URL = 2048
MAX_WEBHOOK_EXTRA = 8192


def parse_language(query: Mapping[str, str], *, english_only: bool = False) -> LanguageChoice:
    if english_only:  # model=pulse-2: English, and nothing else
        raw = (query.get("language") or "en").strip().lower()
        if raw != "en":
            raise ParamError(
                "language",
                f"model {query.get('model')!r} is English-only; send language=en (or use "
                f"model=pulse for {raw!r}).",
                "en",
            )
        return LanguageChoice(raw, raw, (raw,))
    raw = (query.get("language") or "multi-eu").strip().lower()
    if raw in LANGUAGE_GROUPS:
        return LanguageChoice(raw, None, LANGUAGE_GROUPS[raw])
    languages = whisper_languages()
    if raw == "multi":
        return LanguageChoice(raw, None, languages)
    if raw in languages:
        return LanguageChoice(raw, raw, (raw,))
    raise ParamError(
        "language",
        f"language {raw!r} is not supported. Send an ISO 639-1 code the model knows "
        "(e.g. en, de, fr, es), 'multi-eu', 'multi-indic', 'multi-asian' or 'multi'.",
        ", ".join(["multi-eu", "multi", "multi-indic", "multi-asian", *languages]),
    )


def parse_keywords(raw: str | None) -> tuple[Keyword, ...]:
    """`word[:INTENSIFIER],phrase with spaces[:X],...` — intensifier 0..20, default 1.0."""
    if raw is None or not raw.strip():
        return ()
    entries = [e.strip() for e in raw.split(",")]
    entries = [e for e in entries if e]
    if len(entries) > MAX_KEYWORDS:
        raise ParamError(
            "keywords", f"keywords has {len(entries)} entries; at most {MAX_KEYWORDS} are allowed."
        )
    keywords: list[Keyword] = []
    for entry in entries:
        phrase, sep, boost = entry.rpartition(":")
        if not sep:
            phrase, boost = entry, ""
        phrase = phrase.strip()
        if not phrase:
            raise ParamError(
                "keywords",
                f"keywords entry {entry!r} has no word before ':'. Use word or word:INTENSIFIER.",
            )
        intensifier = 1.0
        if boost.strip():
            try:
                intensifier = float(boost)
            except ValueError:
                raise ParamError(
                    "keywords",
                    f"keywords entry {entry!r}: intensifier {boost!r} is not a number "
                    "(use e.g. 'word:6').",
                    "0..20",
                ) from None
            if not 0.0 <= intensifier <= 20.0:
                raise ParamError(
                    "keywords",
                    f"keywords entry {entry!r}: intensifier must be from 0 to 20.",
                    "0..20",
                )
        keywords.append(Keyword(phrase, intensifier))
    return tuple(keywords)


def parse_redact(query: Mapping[str, str], name: str) -> frozenset[RedactEntity]:
    """`true` (every kind of the parameter's family), `false`, or a comma-separated list of
    entity kinds (`protocol.RedactEntity` or an alias) from either family."""
    raw = query.get(name)
    if raw is None:
        return frozenset()
    value = raw.strip().lower()
    if value in ("false", ""):
        return frozenset()
    if value == "true":
        return PII_ENTITIES if name == "redact_pii" else PCI_ENTITIES
    kinds: set[RedactEntity] = set()
    for item in value.split(","):
        key = item.strip().replace("-", "_").replace(" ", "_")
        if not key:
            continue
        if key in RedactEntity.__members__.values():
            kinds.add(RedactEntity(key))
        elif key in REDACT_ALIASES:
            kinds |= REDACT_ALIASES[key]
        else:
            allowed = ", ".join(["true", "false", *RedactEntity])
            raise ParamError(
                name,
                f"{name} must be true, false or a comma-separated list of entity kinds; "
                f"{item.strip()!r} is not a kind this server detects.",
                allowed,
            )
    return frozenset(kinds)


def check_accepted_flags(query: Mapping[str, str]) -> None:
    """Validate the boolean parameters we accept but do not act on (ACCEPTED_FLAGS)."""
    for name in ACCEPTED_FLAGS:
        _bool(query, name, False)


def parse_webhook(query: Mapping[str, str]) -> Webhook | None:
    """`webhook_url` (+ `webhook_method` POST|GET, `webhook_extra`) of a Pulse Pro request.
    Only the form is checked here; the address is checked when the result is delivered."""
    url = query.get("webhook_url")
    if url is None or not url.strip():
        return None
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > MAX_WEBHOOK_URL:
        raise ParamError(
            "webhook_url",
            f"webhook_url must be an absolute http:// or https:// URL of at most "
            f"{MAX_WEBHOOK_URL} characters.",
        )
    method = (query.get("webhook_method") or "POST").strip().upper()
    if method not in ("POST", "GET"):
        raise ParamError(
            "webhook_method",
            f"webhook_method must be POST or GET; got {query.get('webhook_method')!r}.",
            "POST, GET",
        )
    extra = query.get("webhook_extra")
    if extra is not None and len(extra) > MAX_WEBHOOK_EXTRA:
        raise ParamError(
            "webhook_extra", f"webhook_extra is limited to {MAX_WEBHOOK_EXTRA} characters."
        )
    return Webhook(url, "POST" if method == "POST" else "GET", extra)


def parse_text_options(query: Mapping[str, str], *, word_timestamps_default: bool) -> TextOptions:
    fmt = _bool(query, "format", True)
    punctuate = _bool(query, "punctuate", True)
    capitalize = _bool(query, "capitalize", True)
    itn = _bool(query, "itn_normalize", False)
    numerals = cast(Numerals, _choice(query, "numerals", "auto", NUMERALS))
    if not fmt:  # the master switch forces the others off (seed document)
        punctuate = capitalize = itn = False
    return TextOptions(
        word_timestamps=_bool(query, "word_timestamps", word_timestamps_default),
        sentence_timestamps=_bool(query, "sentence_timestamps", False),
        diarize=_bool(query, "diarize", False),
        redact_pii=parse_redact(query, "redact_pii"),
        redact_pci=parse_redact(query, "redact_pci"),
        numerals=numerals,
        itn_normalize=itn,
        punctuate=punctuate,
        capitalize=capitalize,
        format=fmt,
    )


def check_streaming_model(query: Mapping[str, str]) -> None:
    """`/waves/v1/stt/live` requires `model=pulse` (or its English-only alias `pulse-2`);
    pulse-pro has no streaming worker."""
    raw = query.get("model")
    if raw is None or not raw.strip():
        raise ParamError("model", "model is required on this endpoint; send model=pulse.", "pulse")
    value = raw.strip().lower()
    if value == "pulse-pro":
        raise ParamError("model", PULSE_PRO_STREAMING_MESSAGE, "pulse")
    if value not in STREAMING_MODELS:
        raise ParamError(
            "model",
            f"model {raw!r} is not a streaming model; send model=pulse.",
            ", ".join(STREAMING_MODELS),
        )


def english_only(query: Mapping[str, str]) -> bool:
    return (query.get("model") or "").strip().lower() in ENGLISH_ONLY_MODELS


def parse_file_params(query: Mapping[str, str], *, legacy_path: bool) -> FileParams:
    """`POST /waves/v1/stt/?model=pulse|pulse-pro` or the legacy `/waves/v1/pulse/get_text`."""
    pro = False
    if not legacy_path:
        raw = (query.get("model") or "").strip().lower()
        if raw not in FILE_MODELS:
            listed = ", ".join(FILE_MODELS)
            raise ParamError(
                "model",
                f"model must be one of {listed} on this endpoint; got {query.get('model')!r}.",
                listed,
            )
        pro = raw == "pulse-pro"
    check_accepted_flags(query)
    return FileParams(
        pro=pro,
        language=parse_language(query, english_only=not legacy_path and english_only(query)),
        text=parse_text_options(query, word_timestamps_default=False),
        # Webhook mode is Pulse Pro's (as on the hosted API): model=pulse answers in-line.
        webhook=parse_webhook(query) if pro else None,
        multichannel=_bool(query, "multichannel", False),
    )


def parse_channels(query: Mapping[str, str], encoding: Encoding) -> int:
    """`channels=N` (pulse-stt extension): N interleaved channels per frame, 1 by default;
    only the PCM and G.711 encodings can carry more than one."""
    channels = _int(query, "channels", 1, 1, MAX_CHANNELS) or 1
    if channels > 1 and encoding not in INTERLEAVED_ENCODINGS:
        listed = ", ".join(INTERLEAVED_ENCODINGS)
        raise ParamError(
            "channels",
            f"channels={channels} needs interleaved samples, which encoding={encoding} does "
            f"not carry; send the audio as one of {listed} with channels interleaved sample "
            "by sample, or open one stream per channel.",
            listed,
        )
    return channels


def parse_stream_params(query: Mapping[str, str], *, legacy_path: bool) -> StreamParams:
    """Validate a WebSocket query string. `legacy_path` is `/waves/v1/pulse/get_text`."""
    if not legacy_path:
        check_streaming_model(query)
    sample_rate_raw = query.get("sample_rate")
    sample_rate = MODEL_RATE
    if sample_rate_raw is not None:
        allowed = ", ".join(str(r) for r in SAMPLE_RATES)
        try:
            sample_rate = int(sample_rate_raw.strip())
        except ValueError:
            raise ParamError(
                "sample_rate",
                f"sample_rate must be one of {allowed}; got {sample_rate_raw!r}.",
                allowed,
            ) from None
        if sample_rate not in SAMPLE_RATES:
            raise ParamError(
                "sample_rate", f"sample_rate must be one of {allowed}; got {sample_rate}.", allowed
            )
    external_id = query.get("external_session_id")
    if external_id is not None and not EXTERNAL_ID_RE.fullmatch(external_id):
        raise ParamError(
            "external_session_id",
            "external_session_id must be 1 to 128 characters of A-Z, a-z, 0-9, '_', '.' or '-'.",
        )
    vad_events = _bool(query, "vad_events", False)
    vad_alias = _bool(query, "vad", False)  # validated even when vad_events is set
    check_accepted_flags(query)
    encoding = cast(Encoding, _choice(query, "encoding", "linear16", ENCODINGS))
    return StreamParams(
        language=parse_language(query, english_only=not legacy_path and english_only(query)),
        encoding=encoding,
        sample_rate=sample_rate,
        text=parse_text_options(query, word_timestamps_default=legacy_path),
        eou_timeout_ms=_int(query, "eou_timeout_ms", 800, 100, 10_000) or 800,
        finalize_on_words=_bool(query, "finalize_on_words", True),
        max_words=_int(query, "max_words", None, 1, 10_000),
        keywords=parse_keywords(query.get("keywords")),
        vad_events=vad_events or vad_alias,
        full_transcript=_bool(query, "full_transcript", False),
        external_session_id=external_id,
        endpointing=_bool(query, "endpointing", False),
        endpointing_timeout_ms=_int(query, "endpointing_timeout", 600, 10, 10_000) or 600,
        vad_threshold=_fraction(query, "vad_threshold"),
        vad_min_speech_ms=_int(query, "vad_min_speech_ms", None, 0, 10_000),
        channels=parse_channels(query, encoding),
    )
