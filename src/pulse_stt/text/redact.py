"""PII and PCI redaction of transcripts, numbered per session.

Nothing here needs a model download. Detection runs on a view of the tokens in which
spoken digits ("four one one one", "vier eins") read as digits and the digits Whisper
writes read alike in every separator style (`5, 5, 5`, `5-5-5`, `555.123.4567`; see
`redact_view`), so card and phone numbers are caught with or without ITN; e-mails are
found written and spoken (`redact_email`). A name found is also redacted where the session
meets it again: lower case, or inside another word (`sarah.johnson@...`). Detection uses
Google's libphonenumber (`phonenumbers`) for phone numbers, `python-stdnum` for the Luhn
and IBAN checksums, and the US Census name lists shipped in the `names` package for first
and last names (a lexicon with casing and context cues: there is no NER model).

- redact_pii: [FIRSTNAME_n] [LASTNAME_n] [PHONENUMBER_n] [EMAIL_n] [ADDRESS_n]
- redact_pci: [ACCOUNTNUMBER_n] for card numbers (Luhn), CVV, expiry, IBAN and account
  numbers; [ADDRESS_n] for ZIP codes

The same value gets the same token for the whole session. A request may name the kinds
it wants (`protocol.RedactEntity`); `redact_pii=true` / `redact_pci=true` are all of
`PII_ENTITIES` / `PCI_ENTITIES`.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import cache

import phonenumbers
from stdnum import iban, luhn

from pulse_stt.protocol import PCI_ENTITIES, PII_ENTITIES, RedactEntity
from pulse_stt.text.redact_email import find_emails
from pulse_stt.text.redact_view import STRIP, detection_view
from pulse_stt.text.tokens import Token, span_tokens, with_text

_NAME_KINDS = ("FIRSTNAME", "LASTNAME")
_JOINED = re.compile(r"\w[._@+-]\w")  # one written word made of parts: an e-mail, a handle
_JOINED_SPLIT = re.compile(r"([._@+-])")
_CARD = re.compile(r"(?<![\d])(?:\d[ -]?){11,19}\d(?![\d])")
_CARD_CONTEXT = re.compile(
    r"\b(?:card|credit|debit|visa|master ?card|amex|american express|discover|karte|"
    r"kartennummer|kreditkarte|tarjeta|carte|carta|cartão|cartao)\b",
    re.I,
)
# Whole runs only: a phone number is never cut out of a longer digit sequence.
_DIGIT_RUN = re.compile(r"(?<!\d)(?<!\d[ .-])(?:\+?\d[ .-]?){6,14}\d(?![ .-]?\d)")
# Country letters and check digits may come spelled out ("D E 8 9 3704 ...").
_IBAN = re.compile(r"\b[A-Z] ?[A-Z] ?\d ?\d(?:[ .-]?[A-Z0-9]){11,30}\b")
# Read out digit by digit, a run this long is an account (an IBAN's BBAN, say) whatever
# the words around it became; 13-16 digit runs need Luhn or a card cue (see _CARD).
# "2019, 2020, 2021" reads as one run once the commas are gone: a list of years, no phone.
_YEARS = re.compile(r"(?:19|20)\d\d(?: (?:19|20)\d\d)+")
_LONG_RUN = re.compile(r"(?<![\dA-Za-z])(?<!\d[ .-])\d(?:[ .-]?\d){16,33}(?![ .-]?\d)")
_CVV = re.compile(
    r"\b(?:cvv|cvc|cv2|security code|verification code|sicherheitscode|prüfnummer|"
    r"código de seguridad|cryptogramme|codice di sicurezza|código de segurança)\b"
    r"\D{0,20}?(\d(?:[ .-]?\d){2,3})(?![ .-]?\d)",
    re.I,
)
_EXPIRY = re.compile(
    r"\b(?:expir\w*|exp\.?|valid (?:thru|through|until)|gültig bis|ablaufdatum|vence|"
    r"caduca|scadenza|scade|validade|validité)\D{0,20}?"
    r"(\d{1,2} ?[/-] ?\d{2,4}|\d{4}|\d{1,2} \d{2}|\d \d \d \d)(?![ .-]?\d)",
    re.I,
)
_ACCOUNT = re.compile(
    r"\b(?:account|acct|routing)(?: number| no\.?| #)?\D{0,15}?(\d(?:[\d -]{3,}\d))", re.I
)
_ZIP = re.compile(r"\b(?:zip|postal)(?: code)?\D{0,10}?(\d{5}(?:-\d{4})?)(?!\d)", re.I)
# Numbers found by the words said before them: (pattern, kind asked for, token name).
_CONTEXT_PATTERNS = (
    (_CVV, RedactEntity.CVV, "ACCOUNTNUMBER"),
    (_EXPIRY, RedactEntity.EXPIRY_DATE, "ACCOUNTNUMBER"),
    (_ACCOUNT, RedactEntity.ACCOUNT_NUMBER, "ACCOUNTNUMBER"),
    (_ZIP, RedactEntity.ZIP_CODE, "ADDRESS"),
)
_ADDRESS = re.compile(
    r"\b\d{1,6}(?: [A-Z][a-z]+){1,3} (?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|"
    r"Drive|Dr|Court|Ct|Way|Place|Pl|Terrace|Parkway|Pkwy|Highway|Hwy|Circle|Square|Sq)\b\.?"
)
_NAME_CUES = re.compile(
    r"(?:name is|name's|this is|i am|i'm|call me|speaking with|mr\.?|mrs\.?|ms\.?|dr\.?)$", re.I
)
# Common words that are also given names: a capital alone does not make them names; they
# count only after a cue ("my name is") or before a surname.
_AMBIGUOUS_NAMES = frozenset(
    "will may june april august mark bill rose grace hope joy faith art guy sue pat jean "
    "gene sky summer autumn dawn eve ray sunny chance don frank jack rich rob sandy bob "
    "honey ivy iris lily ruby amber jade crystal pearl holly heather violet olive penny "
    "angel king young long brown white black green gray grey stone wood hill price love "
    "major miles christian china paris london madison jordan austin dallas an in is he "
    "grant carol drew dean wade chase hunter page carter cash clay dale glen lane miller "
    "baker cook parker mason porter sterling buddy rocky cary van rod misty candy jewel fern "
    "dixie gay young queen kitty pansy terra eve kay dale lee sally tracy robin hazel ebony "
    "daisy ora ola al ed wm ina ila rene dee lou fay nell pam kim".split()
)
_NEVER_NAMES = frozenset(
    "an in is he so the a i oh ok yes no hi hello thanks thank god lord".split()
)


@cache
def _name_lists() -> tuple[frozenset[str], frozenset[str]]:
    import names

    folder = os.path.dirname(names.__file__)

    def read(filename: str, limit: int) -> set[str]:
        with open(os.path.join(folder, filename)) as handle:
            return {line.split()[0].lower() for _, line in zip(range(limit), handle, strict=False)}

    first = read("dist.male.first", 600) | read("dist.female.first", 1000)
    last = read("dist.all.last", 30000)
    return frozenset(first - _NEVER_NAMES), frozenset(last - _NEVER_NAMES - _AMBIGUOUS_NAMES)


@dataclass(frozen=True)
class _Hit:
    start: int  # character span in the detection text
    end: int
    kind: str
    value: str


class SessionRedactor:
    """Redacts finals (and, cheaply, partials) of one session with stable numbering."""

    def __init__(
        self,
        *,
        pii: bool = False,
        pci: bool = False,
        entities: Iterable[RedactEntity] = (),
        region: str = "US",
    ) -> None:
        wanted = set(entities)
        if pii:
            wanted |= PII_ENTITIES
        if pci:
            wanted |= PCI_ENTITIES
        self.entities = frozenset(wanted)
        self._region = region
        self._assigned: dict[tuple[str, str], str] = {}
        self._counts: Counter[str] = Counter()
        self._names: dict[str, str] = {}  # name (lower case) -> FIRSTNAME / LASTNAME

    def redact(
        self, tokens: Sequence[Token], *, commit: bool = True, language: str | None = None
    ) -> tuple[list[Token], list[str]]:
        """Tokens with entities replaced; the redaction tokens used, in order.

        `commit=False` (partials) numbers new entities tentatively without remembering them.
        `language` (the transcript's) adds its digit words to the English ones.
        """
        if not tokens or not self.entities:
            return list(tokens), []
        view, spans = detection_view(tokens, language)
        hits = list(self._detect(view, tokens, spans))
        # Names found now or earlier in the session: also where they appear again,
        # lower case or inside another entity ("sarah.johnson@...").
        known = dict(self._names)
        for hit in hits:
            if hit.kind in _NAME_KINDS:
                known.setdefault(hit.value, hit.kind)
        hits += _repeated_names(tokens, spans, known)
        hits.sort(key=lambda h: (h.start, -(h.end - h.start)))
        counts = self._counts.copy()
        out: list[Token] = []
        used: list[str] = []
        position = 0
        covered_until = -1
        for hit in hits:
            if hit.start < covered_until:
                continue  # inside an entity already redacted
            first, last = _token_range(spans, hit.start, hit.end)
            if first < position:
                continue
            label = self._label(hit.kind, hit.value, counts, commit)
            out.extend(tokens[position:first])
            out.extend(_replace(tokens[first : last + 1], label))
            position = last + 1
            covered_until = spans[last][1]
            if label not in used:
                used.append(label)
        out.extend(tokens[position:])
        if known:
            out = [self._names_inside(t, known, counts, commit, used) for t in out]
        if commit:
            self._names.update(known)
        return out, used

    def _names_inside(
        self,
        token: Token,
        known: dict[str, str],
        counts: Counter[str],
        commit: bool,
        used: list[str],
    ) -> Token:
        """A known name that is part of a token (`sarah.johnson@mail.com`) replaced."""
        if not _JOINED.search(token.text):
            return token
        parts = _JOINED_SPLIT.split(token.text)
        changed = False
        for i, part in enumerate(parts):
            kind = known.get(part.lower())
            if kind is not None and _counts_as_name(part):
                label = self._label(kind, part.lower(), counts, commit)
                parts[i] = label
                changed = True
                if label not in used:
                    used.append(label)
        return with_text(token, "".join(parts)) if changed else token

    def _label(self, kind: str, value: str, counts: Counter[str], commit: bool) -> str:
        key = (kind, value)
        label = self._assigned.get(key)
        if label is None:
            counts[kind] += 1
            label = f"[{kind}_{counts[kind]}]"
            if commit:
                self._assigned[key] = label
                self._counts[kind] = counts[kind]
        return label

    def _detect(
        self, view: str, tokens: Sequence[Token], spans: list[tuple[int, int]]
    ) -> Iterator[_Hit]:
        wants = self.entities.__contains__
        name_kinds = (RedactEntity.FIRST_NAME, RedactEntity.LAST_NAME, RedactEntity.EMAIL)
        names = list(_names(tokens, spans)) if any(map(wants, name_kinds)) else []
        said = {hit.value for hit in names} | set(self._names)
        first_names, last_names = _name_lists()

        def is_name(word: str) -> bool:  # a word before "at" that belongs to the address
            lower = word.lower()
            listed = (lower in first_names or lower in last_names) and (
                lower not in _AMBIGUOUS_NAMES
            )
            return lower in said or (word[:1].isupper() and listed)

        if wants(RedactEntity.CREDIT_CARD):
            for m in _CARD.finditer(view):
                digits = re.sub(r"\D", "", m.group())
                # Luhn-valid anywhere; after "card"/"visa"/... even when a digit was misheard.
                said_card = _CARD_CONTEXT.search(view[max(0, m.start() - 40) : m.start()])
                if 13 <= len(digits) <= 19 and (luhn.is_valid(digits) or said_card):
                    yield _Hit(m.start(), m.end(), "ACCOUNTNUMBER", digits)
        if wants(RedactEntity.IBAN):
            for m in _IBAN.finditer(view):
                end = _valid_iban_end(m.group())
                if end:
                    value = iban.compact(m.group()[:end])
                    yield _Hit(m.start(), m.start() + end, "ACCOUNTNUMBER", value)
        if wants(RedactEntity.IBAN) or wants(RedactEntity.ACCOUNT_NUMBER):
            for m in _LONG_RUN.finditer(view):
                yield _Hit(m.start(), m.end(), "ACCOUNTNUMBER", re.sub(r"\D", "", m.group()))
        for pattern, entity, kind in _CONTEXT_PATTERNS:
            if wants(entity):
                for m in pattern.finditer(view):
                    yield _Hit(m.start(1), m.end(1), kind, re.sub(r"\W", "", m.group(1)))
        if wants(RedactEntity.EMAIL):
            for email in find_emails(view, is_name):
                yield _Hit(email.start, email.end, "EMAIL", email.value)
        if wants(RedactEntity.ADDRESS):
            for m in _ADDRESS.finditer(view):
                yield _Hit(m.start(), m.end(), "ADDRESS", m.group().lower())
        if wants(RedactEntity.PHONE_NUMBER):
            for match in phonenumbers.PhoneNumberMatcher(view, self._region):
                yield _Hit(
                    match.start, match.end, "PHONENUMBER", re.sub(r"\D", "", match.raw_string)
                )
            cards = wants(RedactEntity.CREDIT_CARD)
            for m in _DIGIT_RUN.finditer(view):
                digits = re.sub(r"\D", "", m.group())
                if (
                    7 <= len(digits) <= 15
                    and not (cards and luhn.is_valid(digits) and len(digits) >= 13)
                    and not _YEARS.fullmatch(m.group())
                ):
                    yield _Hit(m.start(), m.end(), "PHONENUMBER", digits)
        if wants(RedactEntity.FIRST_NAME) or wants(RedactEntity.LAST_NAME):
            for hit in names:
                entity = (
                    RedactEntity.FIRST_NAME if hit.kind == "FIRSTNAME" else RedactEntity.LAST_NAME
                )
                if wants(entity):
                    yield hit


def _valid_iban_end(text: str) -> int:
    """Length of the longest prefix of `text` that is a valid IBAN (0: none)."""
    for end in range(len(text), 14, -1):
        if text[end - 1].isalnum() and iban.is_valid(text[:end]):
            return end
    return 0


def _token_range(spans: list[tuple[int, int]], start: int, end: int) -> tuple[int, int]:
    indices = [i for i, (s, e) in enumerate(spans) if s < end and e > start]
    return indices[0], indices[-1]


def _replace(source: Sequence[Token], label: str) -> list[Token]:
    """One redaction token for the span, keeping the sentence punctuation after it."""
    trail = re.search(r"[.,;:!?]+$", source[-1].text)
    return span_tokens(source, [label + (trail.group() if trail else "")])


def _names(tokens: Sequence[Token], spans: list[tuple[int, int]]) -> Iterator[_Hit]:
    first_names, last_names = _name_lists()
    previous_was_first = False
    for i, token in enumerate(tokens):
        bare = STRIP.sub("", token.text)
        lower = bare.lower()
        capitalized = bare[:1].isupper() and bare[1:].islower() and bare.isalpha()
        before = " ".join(t.text for t in tokens[max(0, i - 3) : i])
        cued = bool(_NAME_CUES.search(before))
        sentence_start = i == 0 or tokens[i - 1].text.endswith((".", "?", "!"))
        if previous_was_first and capitalized and (lower in last_names or not sentence_start):
            yield _Hit(spans[i][0], spans[i][1], "LASTNAME", lower)
            previous_was_first = False
            continue
        previous_was_first = False
        if not capitalized:
            continue
        title = tokens[i - 1].text.lower().rstrip(".") if i else ""
        if title in ("mr", "mrs", "ms", "dr", "miss") and lower in last_names | first_names:
            yield _Hit(spans[i][0], spans[i][1], "LASTNAME", lower)
            continue
        if lower not in first_names:
            continue
        if lower not in _AMBIGUOUS_NAMES or cued or _next_is_surname(tokens, i, last_names):
            yield _Hit(spans[i][0], spans[i][1], "FIRSTNAME", lower)
            previous_was_first = True


def _next_is_surname(tokens: Sequence[Token], i: int, last_names: frozenset[str]) -> bool:
    if i + 1 >= len(tokens):
        return False
    nxt = STRIP.sub("", tokens[i + 1].text)
    return nxt[:1].isupper() and nxt.lower() in last_names


def _counts_as_name(word: str) -> bool:
    """A known name met again: any case, except words that are names only when capitalised."""
    return word.lower() not in _AMBIGUOUS_NAMES or word[:1].isupper()


def _repeated_names(
    tokens: Sequence[Token], spans: list[tuple[int, int]], known: dict[str, str]
) -> list[_Hit]:
    """Whole tokens that are a name already found, in whatever case the model wrote them."""
    hits = []
    for i, token in enumerate(tokens):
        bare = STRIP.sub("", token.text)
        kind = known.get(bare.lower())
        if kind is not None and _counts_as_name(bare):
            hits.append(_Hit(spans[i][0], spans[i][1], kind, bare.lower()))
    return hits
