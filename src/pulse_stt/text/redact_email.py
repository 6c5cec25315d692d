"""E-mail addresses as Whisper writes them: `john.smith@example.com`, `john dot smith at
example dot com`, `John Smith at example.com`, `anna punkt schmidt at beispiel punkt de`.

Every form of one address has one value (`john.smith@example.com`), so a session numbers
the written and the spoken form alike. A local part of several words without separators
("John Smith at example.com") takes in the words before "at" that are names.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_DOT_WORDS = r"dot|punkt|punto|point|ponto"
_AT_WORDS = r"at|arroba|arobase|chiocciola|klammeraffe"
_SEP_WORDS = rf"{_DOT_WORDS}|underscore|dash|hyphen|minus|unterstrich|bindestrich"
_TLDS = "com|org|net|edu|gov|io|co|uk|de|fr|es|it|pt|nl|be|ch|at|eu|us|ca|au|br|mx|ar|info|biz|me"
_WORD = r"[^\W_]+"
_LOCAL = rf"{_WORD}(?:[._+-]{_WORD}|\s(?:{_SEP_WORDS})\s{_WORD})*"
_DOT = rf"(?:\.|\s(?:{_DOT_WORDS})\s)"
_DOMAIN = rf"{_WORD}(?:{_DOT}{_WORD})*{_DOT}(?:{_TLDS})"
EMAIL = re.compile(
    rf"(?<![\w.@-])({_LOCAL})(?:\s?@\s?|\s(?:{_AT_WORDS})[,:]?\s)({_DOMAIN})(?![\w@-]|\.\w)",
    re.I,
)
# "john.smitha.ample.com", "Sarah.Johnsonatgmail.com": Whisper ran "smith at example"
# together; a dotted word that starts with a name and ends in a domain is the address.
_MERGED = re.compile(rf"(?<![\w.@-])({_WORD})(?:\.{_WORD})+\.(?:{_TLDS})(?![\w@-]|\.\w)", re.I)
# Said before "at" + a domain, these are a place or a website, not a mailbox.
_NOT_LOCAL = frozenset(
    "us me him her them it you we home work school here there look visit find "
    "online site website page available".split()
)
_SPOKEN_PART = {
    **{w: "." for w in _DOT_WORDS.split("|")},
    "underscore": "_",
    "unterstrich": "_",
    **{w: "-" for w in ("dash", "hyphen", "minus", "bindestrich")},
}


@dataclass(frozen=True)
class EmailHit:
    start: int
    end: int
    value: str  # the address in written form, lower case


def _written(part: str) -> str:
    words = part.lower().split()
    return "".join(_SPOKEN_PART.get(w, w) for w in words)


def find_emails(view: str, is_name: Callable[[str], bool]) -> Iterator[EmailHit]:
    """Addresses in `view`; `is_name(word)` tells whether a word before "at" is a name."""
    for m in EMAIL.finditer(view):
        local, domain = m.group(1), m.group(2)
        start = m.start(1)
        written_local = _written(local)
        if written_local in _NOT_LOCAL:
            continue
        # "John Smith at example.com": the names just before the local part belong to it.
        words_before = view[:start].split(" ")[:-1]
        extra: list[str] = []
        while words_before and len(extra) < 2:
            original = words_before.pop()
            word = original
            if not extra and word.endswith(".") and word[:-1].isalpha():
                word = word[:-1]  # "Sarah. Johnson at ...": the model wrote the dot
            if not word.isalpha() or not is_name(word):
                break
            extra.insert(0, word)
            start -= len(original) + 1
        if extra:
            written_local = ".".join([*(w.lower() for w in extra), written_local])
        yield EmailHit(start, m.end(2), f"{written_local}@{_written(domain)}")
    for m in _MERGED.finditer(view):
        if m.group(1).lower() != "www" and is_name(m.group(1).capitalize()):
            yield EmailHit(m.start(), m.end(), m.group().lower())
