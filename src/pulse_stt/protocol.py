"""The vocabulary every layer shares: what a request asked for (option types, parsed once
at the edge by `api/params.py`) and the kinds of things that happen (errors, final
reasons, model passes). It imports nothing from pulse_stt, so any layer may import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

MODEL_RATE = 16_000  # Hz: what the VAD, the ASR model and the speaker encoder take

Encoding = Literal["linear16", "linear32", "alaw", "mulaw", "opus", "ogg_opus"]
Numerals = Literal["auto", "true", "false"]

ENCODINGS: tuple[Encoding, ...] = ("linear16", "linear32", "alaw", "mulaw", "opus", "ogg_opus")
SAMPLE_RATES: tuple[int, ...] = (8000, 16000, 22050, 24000, 44100, 48000)
NUMERALS: tuple[Numerals, ...] = ("auto", "true", "false")
MULTI_EU_LANGUAGES: tuple[str, ...] = ("de", "en", "fr", "it", "nl", "pt", "ru", "es")
# The hosted groups, less what Whisper does not know: the hosted `multi-indic` also
# covers Odia (`or`), which Whisper has no token for.
MULTI_INDIC_LANGUAGES: tuple[str, ...] = ("en", "hi", "gu", "mr", "bn")
MULTI_ASIAN_LANGUAGES: tuple[str, ...] = ("zh", "ko", "ja", "en")
# `model=pulse-2` is the hosted English-only model: an alias of `pulse` pinned to English.
ENGLISH_ONLY_MODELS: tuple[str, ...] = ("pulse-2",)
MAX_KEYWORDS = 100
# `channels` (streaming) and `multichannel=true` (REST): the most channels any server
# takes; the server's own limit is the `max_channels` setting (at most this).
MAX_CHANNELS = 64
# Streaming encodings whose frames can carry interleaved channels (`channels` > 1).
INTERLEAVED_ENCODINGS: tuple[Encoding, ...] = ("linear16", "linear32", "alaw", "mulaw")
EXTERNAL_ID_RE = re.compile(r"[A-Za-z0-9_.-]{1,128}")


class ErrorKind(StrEnum):
    """The `error` field of an error a client gets (and the label `pulse_stt_errors_total`
    counts it under)."""

    BAD_AUDIO = "bad_audio"
    BAD_MESSAGE = "bad_message"
    ENGINE_ERROR = "engine_error"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    AUTH_THROTTLED = "auth_throttled"  # too many failed authentications from one address
    INVALID_PARAMETER = "invalid_parameter"
    TOO_LARGE = "too_large"  # a body or frame over its limit
    TOO_LONG = "too_long"  # a REST file over max_file_audio_s once decoded
    BAD_REQUEST = "bad_request"
    EMPTY_BODY = "empty_body"
    UNAVAILABLE = "unavailable"  # shutting down
    STORE_UNAVAILABLE = "store_unavailable"  # the key store (database) is unreachable
    INTERNAL = "internal"  # a bug: HTTP 500 or close 1011
    TOO_MANY_SESSIONS = "too_many_sessions"
    SERVER_FULL = "server_full"
    OVERLOADED = "overloaded"
    SESSION_TOO_LONG = "session_too_long"
    SLOW_READER = "slow_reader"


class RedactEntity(StrEnum):
    """A kind of entity `redact_pii` / `redact_pci` can be asked to redact by name."""

    FIRST_NAME = "first_name"  # [FIRSTNAME_n]
    LAST_NAME = "last_name"  # [LASTNAME_n]
    PHONE_NUMBER = "phone_number"  # [PHONENUMBER_n]
    EMAIL = "email"  # [EMAIL_n]
    ADDRESS = "address"  # [ADDRESS_n]: street addresses
    CREDIT_CARD = "credit_card"  # [ACCOUNTNUMBER_n]: card numbers (Luhn, or said "card")
    CVV = "cvv"  # [ACCOUNTNUMBER_n]
    EXPIRY_DATE = "expiry_date"  # [ACCOUNTNUMBER_n]: a card's expiry
    IBAN = "iban"  # [ACCOUNTNUMBER_n]
    ACCOUNT_NUMBER = "account_number"  # [ACCOUNTNUMBER_n]: account and routing numbers
    ZIP_CODE = "zip_code"  # [ADDRESS_n]


PII_ENTITIES = frozenset(
    {
        RedactEntity.FIRST_NAME,
        RedactEntity.LAST_NAME,
        RedactEntity.PHONE_NUMBER,
        RedactEntity.EMAIL,
        RedactEntity.ADDRESS,
    }
)
PCI_ENTITIES = frozenset(RedactEntity) - PII_ENTITIES
# Other spellings clients use (the redaction token names, Presidio's entity names, short
# forms), each for the kinds it means. Matched after lower-casing and '-'/' ' -> '_'.
REDACT_ALIASES: dict[str, frozenset[RedactEntity]] = {
    "name": frozenset({RedactEntity.FIRST_NAME, RedactEntity.LAST_NAME}),
    "person": frozenset({RedactEntity.FIRST_NAME, RedactEntity.LAST_NAME}),
    "firstname": frozenset({RedactEntity.FIRST_NAME}),
    "lastname": frozenset({RedactEntity.LAST_NAME}),
    "surname": frozenset({RedactEntity.LAST_NAME}),
    "phone": frozenset({RedactEntity.PHONE_NUMBER}),
    "phonenumber": frozenset({RedactEntity.PHONE_NUMBER}),
    "email_address": frozenset({RedactEntity.EMAIL}),
    "street_address": frozenset({RedactEntity.ADDRESS}),
    "card": frozenset({RedactEntity.CREDIT_CARD}),
    "card_number": frozenset({RedactEntity.CREDIT_CARD}),
    "creditcard": frozenset({RedactEntity.CREDIT_CARD}),
    "credit_card_number": frozenset({RedactEntity.CREDIT_CARD}),
    "cvc": frozenset({RedactEntity.CVV}),
    "security_code": frozenset({RedactEntity.CVV}),
    "expiry": frozenset({RedactEntity.EXPIRY_DATE}),
    "expiration_date": frozenset({RedactEntity.EXPIRY_DATE}),
    "iban_code": frozenset({RedactEntity.IBAN}),
    "accountnumber": frozenset({RedactEntity.ACCOUNT_NUMBER}),
    "bank_account": frozenset({RedactEntity.ACCOUNT_NUMBER}),
    "us_bank_number": frozenset({RedactEntity.ACCOUNT_NUMBER}),
    "routing_number": frozenset({RedactEntity.ACCOUNT_NUMBER}),
    "zip": frozenset({RedactEntity.ZIP_CODE}),
    "zipcode": frozenset({RedactEntity.ZIP_CODE}),
    "postal_code": frozenset({RedactEntity.ZIP_CODE}),
}


class WebhookOutcome(StrEnum):
    """How a Pulse Pro webhook delivery ended (`pulse_stt_webhook_deliveries_total`)."""

    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # every attempt failed, or the receiver refused (4xx) or is not public
    ABORTED = "aborted"  # the server shut down before the job could finish


class FinalReason(StrEnum):
    """What ended a turn (or cut it: MAX_LENGTH and MAX_WORDS finals are followed by more
    of the same turn)."""

    EOU = "eou"  # trailing silence: eou_timeout_ms, or endpointing_timeout with endpointing
    FINALIZE = "finalize"  # the client's finalize message
    CLOSE = "close"  # close_stream/end, the idle timeout or a server shutdown
    MAX_LENGTH = "max_length"  # a turn longer than the model window, cut at a pause
    MAX_WORDS = "max_words"  # max_words reached on a partial

    @property
    def ends_turn(self) -> bool:
        """A final for this reason is the last of its turn: on the wire, `speech_final`."""
        return self not in (FinalReason.MAX_LENGTH, FinalReason.MAX_WORDS)


class PassKind(StrEnum):
    """What a model pass decoded, as the metrics tell passes apart."""

    PARTIAL = "partial"
    FINAL = "final"  # live finals, speculative finals included
    FILE = "file"  # whole-file (REST) turns


class JobKind(StrEnum):
    """One decode job's role, which decides its quality settings and its queue."""

    PARTIAL = "partial"  # the turn so far, shown while it is spoken: fast, coalesced
    # A final-quality pass over the turn so far, started at a pause before the turn is
    # known to be over: queued and coalesced like a partial until a final promotes it.
    SPECULATIVE = "speculative"
    FINAL = "final"  # a live turn's final: queued ahead of everything else
    FILE = "file"  # a whole-file turn: final quality, queued behind live finals

    @property
    def final_quality(self) -> bool:
        return self is not JobKind.PARTIAL

    @property
    def pass_kind(self) -> PassKind:
        if self is JobKind.PARTIAL:
            return PassKind.PARTIAL
        return PassKind.FILE if self is JobKind.FILE else PassKind.FINAL


@dataclass(frozen=True)
class Keyword:
    phrase: str
    intensifier: float = 1.0


@dataclass(frozen=True)
class LanguageChoice:
    """Either one fixed language, or auto-detection restricted to `candidates`."""

    requested: str
    fixed: str | None
    candidates: tuple[str, ...]


@dataclass(frozen=True)
class TextOptions:
    """Switches that shape a transcript after decoding (shared by WebSocket and REST)."""

    word_timestamps: bool
    sentence_timestamps: bool = False
    diarize: bool = False
    # What to redact, by kind: `redact_pii=true` is PII_ENTITIES, `redact_pci=true` is
    # PCI_ENTITIES, a list is those kinds; empty (false) redacts nothing.
    redact_pii: frozenset[RedactEntity] = frozenset()
    redact_pci: frozenset[RedactEntity] = frozenset()
    numerals: Numerals = "auto"
    itn_normalize: bool = False
    punctuate: bool = True
    capitalize: bool = True
    format: bool = True


@dataclass(frozen=True)
class StreamParams:
    """Everything a streaming session was asked for, validated."""

    language: LanguageChoice
    encoding: Encoding
    sample_rate: int
    text: TextOptions
    eou_timeout_ms: int = 800
    finalize_on_words: bool = True
    max_words: int | None = None
    keywords: tuple[Keyword, ...] = ()
    vad_events: bool = False
    full_transcript: bool = False
    external_session_id: str | None = None
    # The VAD ends the open turn after this much trailing silence, when it comes before
    # eou_timeout_ms (see `turn_end_ms`).
    endpointing: bool = False
    endpointing_timeout_ms: int = 600
    vad_threshold: float | None = None  # None: the server's setting
    vad_min_speech_ms: int | None = None  # None: the server's (96 ms)
    # Interleaved channels in each frame (pulse-stt extension): one pipeline per channel.
    channels: int = 1

    @property
    def turn_end_ms(self) -> int:
        """Trailing silence that ends a turn: eou_timeout_ms, or endpointing_timeout when
        endpointing is on and it is shorter."""
        if self.endpointing:
            return min(self.eou_timeout_ms, self.endpointing_timeout_ms)
        return self.eou_timeout_ms

    @property
    def word_limit(self) -> int | None:
        """The word count at which a partial ends its turn, if any."""
        return self.max_words if self.finalize_on_words else None


@dataclass(frozen=True)
class FileParams:
    """A whole-file (REST) request, validated."""

    pro: bool
    language: LanguageChoice
    text: TextOptions
    webhook: Webhook | None = None  # pulse-pro only: answer at once, deliver the result there
    # Each channel transcribed on its own, words and utterances tagged with it (extension).
    multichannel: bool = False


@dataclass(frozen=True)
class Webhook:
    """Where a Pulse Pro result goes (`webhook_url`, `webhook_method`, `webhook_extra`)."""

    url: str
    method: Literal["POST", "GET"] = "POST"
    extra: str | None = None
