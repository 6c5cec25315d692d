"""Digit runs as the model writes them: `5-5-5-1-2-3-4567`, `0, 6, 1, 2`, `4111 1111 1111`.

Shared by ITN (which rewrites them into one written form) and usable by anything that must
read a number whatever separators the model put between its digits (redaction).
"""

from __future__ import annotations

import re

# Digit groups joined by hyphens, dots, spaces or commas (with or without a space after).
DIGIT_RUN_BODY = r"\d+(?:(?:[-.]|,? )\d+)+"
DIGIT_RUN = re.compile(r"(?<![\w.,-])" + DIGIT_RUN_BODY)
_THOUSANDS = re.compile(r"\d{1,3}(?:([.,])\d{3})+(?:[.,]\d+)?")  # 1,000,000 / 1.000,5
_YEAR = re.compile(r"(?:1[89]|20)\d\d")


def digit_groups(text: str) -> list[str]:
    return re.findall(r"\d+", text)


def is_digit_run(text: str, *, cue: bool = False) -> bool:
    """Whether `text` (a DIGIT_RUN match) reads as one number said digit by digit or in groups
    (a phone, card, account or postal code), not a list of quantities or a decimal.

    `cue`: a word just before it announces a number ("call", "number", "card", "code").
    """
    if _THOUSANDS.fullmatch(text):
        return False
    groups = digit_groups(text)
    digits = sum(len(g) for g in groups)
    single = sum(len(g) == 1 for g in groups)
    if digits > 19 or len(groups) < 2:
        return False
    if single >= 5 and single == len(groups):
        return True  # "9, 4, 1, 0, 5": a code read digit by digit
    if digits < 7:
        return cue and digits >= 5
    if "," in text and not single and not cue:
        # "2019, 2020" or "10, 20, 30, 40" are lists unless something says otherwise
        return False
    return not (len(groups) == 2 and all(_YEAR.fullmatch(g) for g in groups))


def format_digit_run(digits: str, language: str) -> str:
    """The written form of a digit string: US phone style in English, card groups of four."""
    if len(digits) in (15, 16) or (len(digits) in (13, 19) and digits[0] == "4"):
        return " ".join(digits[i : i + 4] for i in range(0, len(digits), 4))
    if language == "en":
        if len(digits) == 10:
            return f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
        if len(digits) == 11 and digits[0] == "1":
            return f"1-{digits[1:4]}-{digits[4:7]}-{digits[7:]}"
        if len(digits) == 7:
            return f"{digits[:3]}-{digits[3:]}"
    return digits
