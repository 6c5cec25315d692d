"""Inverse text normalization: spoken-form entities to written form, with NeMo's grammars.

NeMo text processing (pynini/OpenFst grammars; no neural model, no download) covers
English, German, Spanish, French, Portuguese and Russian among the `multi-eu` languages
(plus ar, he, hi, hy, ja, ko, mr, sv, vi, zh). A language's grammar is compiled once
(10-30 s) into the cache directory and loaded from there afterwards.

NeMo's grammars are most reliable on lower-cased, unpunctuated input, so we normalize the
bare words and map the result back onto the original tokens: words ITN left alone keep
their exact original form (case, punctuation, times); rewritten spans take the times
of the words they replace.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from pulse_stt.text.canonical import canonicalise
from pulse_stt.text.tokens import Token, span_tokens

log = logging.getLogger(__name__)

ITN_LANGUAGES = frozenset(
    {"en", "de", "es", "fr", "pt", "ru", "ar", "he", "hi", "hy", "ja", "ko", "mr", "sv", "vi", "zh"}
)
TEXT2NUM_LANGUAGES = frozenset({"it", "nl"})
_EDGE_PUNCT = re.compile(r"^[\"'“”‘’¿¡(\[{]+|[\"'“”‘’.,;:!?)\]}…]+$")
_EN_NUMBER_WORDS = frozenset(
    (
        "zero oh one two three four five six seven eight nine ten eleven twelve thirteen "
        "fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty "
        "seventy eighty ninety hundred first second third fourth fifth sixth seventh eighth "
        "ninth tenth twentieth thirtieth fortieth fiftieth sixtieth seventieth eightieth ninetieth"
    ).split(" ")
)


class Normalizer(Protocol):
    def __call__(self, text: str, language: str) -> str: ...


class _Grammar(Protocol):
    """The part of NeMo's (untyped) InverseNormalizer used here."""

    def inverse_normalize(self, text: str, verbose: bool) -> str: ...


class NemoInverseNormalizer:
    """One compiled grammar per language, built on first use; safe to call from threads."""

    def __init__(self, cache_dir: Path) -> None:
        self._cache_dir = cache_dir
        self._grammars: dict[str, _Grammar] = {}
        self._lock = threading.Lock()

    def supports(self, language: str | None) -> bool:
        return language in ITN_LANGUAGES

    def _grammar(self, language: str) -> _Grammar:
        with self._lock:
            grammar = self._grammars.get(language)
            if grammar is None:
                grammar = self._load_or_compile(language)
                self._grammars[language] = grammar
            return grammar

    def _load_or_compile(self, language: str) -> _Grammar:
        from nemo_text_processing.inverse_text_normalization.inverse_normalize import (
            InverseNormalizer,
        )

        self._cache_dir.mkdir(parents=True, exist_ok=True)
        far = f"{language}_itn_lower_cased.far"
        if (self._cache_dir / far).is_file():
            return InverseNormalizer(lang=language, cache_dir=str(self._cache_dir))
        # Compile in a private directory, then move the result in atomically: another
        # server process starting at the same time must never read a half-written file.
        log.info("compiling the ITN grammar for %s once into %s", language, self._cache_dir)
        with tempfile.TemporaryDirectory(dir=self._cache_dir) as private:
            grammar = InverseNormalizer(lang=language, cache_dir=private)
            built = Path(private) / far
            if built.is_file():
                os.replace(built, self._cache_dir / far)
        return grammar

    def warm(self, language: str) -> None:
        self._grammar(language)

    def __call__(self, text: str, language: str) -> str:
        return self._grammar(language).inverse_normalize(text, verbose=False)


def _units(tokens: Sequence[Token], language: str) -> list[tuple[str, int]]:
    """Bare lower-case words for the grammar, each with the index of its source token."""
    units: list[tuple[str, int]] = []
    for index, token in enumerate(tokens):
        bare = _EDGE_PUNCT.sub("", token.text).lower()
        pieces = bare.split("-") if language == "en" and "-" in bare else [bare]
        if len(pieces) > 1 and not all(p in _EN_NUMBER_WORDS for p in pieces):
            pieces = [bare]  # "ill-disposed" stays one word; "twenty-five" becomes two
        units += [(p, index) for p in pieces if p]
    return units


def apply_nemo(tokens: list[Token], language: str, normalize: Normalizer) -> list[Token]:
    """Rewrite spoken-form spans of `tokens` into written form with the grammar alone."""
    units = _units(tokens, language)
    if not units:
        return tokens
    written = normalize(" ".join(u for u, _ in units), language).split()
    spoken = [u for u, _ in units]
    if written == spoken:
        return tokens
    out: list[Token] = []
    next_token = 0  # tokens before this index are already emitted
    group: list[int] = []  # source token indices of the span being rewritten
    group_out: list[str] = []

    def emit_through(index: int) -> None:
        nonlocal next_token
        while next_token <= index:
            out.append(tokens[next_token])
            next_token += 1

    def flush() -> None:
        nonlocal next_token, group, group_out
        if not group:
            return
        first, last = min(group), max(group)
        emit_through(first - 1)
        out.extend(_rewrite(tokens[first : last + 1], group_out))
        next_token = last + 1
        group, group_out = [], []

    opcodes = difflib.SequenceMatcher(None, spoken, written, autojunk=False).get_opcodes()
    # A token is rewritten as a whole when any of its units changed ("one-third": "one"
    # may survive while "third" becomes "3rd"; the token must not appear twice).
    changed = {
        units[i][1] for tag, i1, i2, _, _ in opcodes if tag != "equal" for i in range(i1, i2)
    }
    for tag, i1, i2, j1, j2 in opcodes:
        if tag == "equal":
            for k in range(i2 - i1):
                token_index = units[i1 + k][1]
                if token_index in changed:
                    group.append(token_index)
                    group_out.append(written[j1 + k])
                    continue
                flush()
                emit_through(token_index)
        elif i1 == i2 and not group:  # pure insertion, between the tokens around it
            emit_through(units[i1 - 1][1] if i1 > 0 else -1)
            at = out[-1].end if out else tokens[0].start
            confidence = (out[-1] if out else tokens[0]).confidence
            out.extend(Token(w, at, at, confidence) for w in written[j1:j2])
        else:
            group += [units[i][1] for i in range(i1, i2)]
            group_out += written[j1:j2]
    flush()
    emit_through(len(tokens) - 1)
    return out


_LEAD = "\"'“‘¿¡([{"  # opening quotes and brackets kept before a rewritten span
_TRAIL = "\"'”’.,;:!?)]}…"  # closing punctuation kept after it


def _rewrite(source: Sequence[Token], written: list[str]) -> list[Token]:
    """The written form of a span, keeping its surrounding punctuation and capital."""
    if not written:
        return []
    first, last = source[0].text, source[-1].text
    lead = first[: len(first) - len(first.lstrip(_LEAD))]
    trail = last[len(last.rstrip(_TRAIL)) :]
    texts = list(written)
    if source[0].text[len(lead) : len(lead) + 1].isupper() and texts[0][:1].islower():
        texts[0] = texts[0][:1].upper() + texts[0][1:]
    texts[0] = lead + texts[0]
    if trail and not texts[-1].endswith(trail):
        texts[-1] += trail
    return span_tokens(source, texts)


# text2num protects none of these: "cinquanta centesimi" came back "50 100º", "per cento"
# "per 100". They are split off and left to the written-form rules.
_TEXT2NUM_KEEP = {
    "it": re.compile(r"\b(centesim[io]|per cento|percento)\b"),
    "nl": re.compile(r"\b(procent|cent)\b"),
}


def text2num_normalize(text: str, language: str) -> str:
    """Spoken numbers and ordinals to digits with text2num (it, nl: no NeMo grammar)."""
    from text_to_num import alpha2digit

    parts = _TEXT2NUM_KEEP[language].split(text)
    return "".join(part if i % 2 else alpha2digit(part, language) for i, part in enumerate(parts))


def covers(normalizer: NemoInverseNormalizer, language: str | None) -> bool:
    """Whether ITN rewrites `language`: NeMo's grammar, or text2num for it and nl."""
    return normalizer.supports(language) or language in TEXT2NUM_LANGUAGES


def apply_itn(
    tokens: list[Token], language: str, normalize: Normalizer, *, full: bool = True
) -> list[Token]:
    """Spoken-form spans and the model's own written forms of `tokens` into written form.

    The grammar (NeMo; text2num for it and nl) turns words into digits, then the
    canonical rules bring what the model wrote in digits to the same written form.
    `full=False` (numerals=true without itn_normalize) keeps the rules to digit runs.
    """
    grammar = text2num_normalize if language in TEXT2NUM_LANGUAGES else normalize
    return canonicalise(apply_nemo(tokens, language, grammar), language, full=full)
