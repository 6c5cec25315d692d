"""The text redaction searches: the tokens as Whisper wrote them, with digits made plain.

Whisper writes a number read digit by digit in many styles: `5, 5, 5, 2, 3, 4`, `5-5-5`,
`555.123.4567`, `4111 1111 1111 1111`, `five five five 123 4567`, or in the words of the
spoken language (`vier eins eins eins`). In the view every spoken digit reads as a digit
and a digit token loses the punctuation around it (`5,` → `5`), so one pattern for digit
runs (single spaces, dots or hyphens between digits) sees all of them. Each token keeps its
character span in the view, so a hit maps back to the tokens (and their times) it covers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pulse_stt.text.tokens import Token

# Digit words per language, 0..9 (several spellings for one digit separated by '|').
_DIGIT_NAMES = {
    "en": "zero|oh|o one two three four five six seven eight nine",
    "de": "null eins zwei|zwo drei vier fünf sechs sieben acht neun",
    "es": "cero uno dos tres cuatro cinco seis siete ocho nueve",
    "fr": "zéro|zero un deux trois quatre cinq six sept huit neuf",
    "it": "zero uno due tre quattro cinque sei sette otto nove",
    "pt": "zero um dois|duas três|tres quatro cinco seis sete oito nove",
    "nl": "nul een twee drie vier vijf zes zeven acht negen",
}


def _digit_words(language: str) -> dict[str, str]:
    words: dict[str, str] = {}
    for digit, spellings in enumerate(_DIGIT_NAMES[language].split()):
        for spelling in spellings.split("|"):
            words[spelling] = str(digit)
    return words


DIGIT_WORDS = {lang: _digit_words(lang) for lang in _DIGIT_NAMES}
STRIP = re.compile(r"^[\"'“”‘’«»(\[¿¡]+|[\"'“”‘’«»)\].,;:!?]+$")
# A token that is a number as written: digits with separators, no letters.
_DIGIT_TOKEN = re.compile(r"^\+?\(?\d[\d().,/+-]*$")
_SINGLE_DIGITS_BY_COMMA = re.compile(r"^\d(?:,\d)+$")  # "5,5,5": digits, not 5 thousand


def digit_words(language: str | None) -> dict[str, str]:
    """English digit words, plus the spoken language's (its words win where they clash)."""
    base = (language or "en").split("-")[0].lower()
    return {**DIGIT_WORDS["en"], **DIGIT_WORDS.get(base, {})}


def view_text(token: Token, words: dict[str, str]) -> str:
    """How one token reads in the detection view."""
    bare = STRIP.sub("", token.text)
    spoken = words.get(bare.lower())
    if spoken is not None:
        return spoken
    if bare and _DIGIT_TOKEN.match(bare) and bare[-1].isdigit():
        if _SINGLE_DIGITS_BY_COMMA.match(bare):
            return bare.replace(",", " ")
        return bare
    return token.text


def detection_view(
    tokens: Sequence[Token], language: str | None = None
) -> tuple[str, list[tuple[int, int]]]:
    """Text to search, digits made plain; each token's character span in it."""
    words = digit_words(language)
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    position = 0
    for token in tokens:
        text = view_text(token, words)
        if parts:
            parts.append(" ")
            position += 1
        spans.append((position, position + len(text)))
        parts.append(text)
        position += len(text)
    return "".join(parts), spans
