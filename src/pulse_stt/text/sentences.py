"""Where a sentence ends: after `.`, `?`, `!` or `…` — but not after "Mr." or "J."."""

from __future__ import annotations

import re

SENTENCE_END = (".", "?", "!", "…", '."', '?"', '!"')
# Words ending in "." that do not end a sentence ("Mr. John", "e.g. this").
_ABBREVIATIONS = frozenset(
    "mr. mrs. ms. dr. prof. st. mt. jr. sr. vs. etc. e.g. i.e. no. inc. ltd. co. approx.".split()
)


def ends_sentence(word: str) -> bool:
    if not word.endswith(SENTENCE_END):
        return False
    if word.endswith("."):
        bare = word.lower().lstrip("\"'(")
        if bare in _ABBREVIATIONS or re.fullmatch(r"[a-z]\.", bare):  # an initial: "J."
            return False
    return True
