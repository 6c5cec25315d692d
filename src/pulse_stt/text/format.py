"""Formatting switches applied to a decoded hypothesis: punctuation and casing.

`punctuate=false` strips end-of-sentence punctuation (. , ? !) and `capitalize=false`
lowercases; both apply alike to the transcript, every word and every utterance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pulse_stt.api.params import TextOptions
from pulse_stt.engine.types import Hypothesis, Word

# Sentence punctuation, not the point or comma inside a number ("3.5", "1,000").
_PUNCT = re.compile(r"[.,?!](?!\w)")
_SENTENCE_END = re.compile(r"[.?!]$")


@dataclass(frozen=True)
class TimedWord:
    text: str
    start: float  # seconds since the connection's first audio byte
    end: float
    confidence: float


@dataclass(frozen=True)
class Utterance:
    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Transcript:
    text: str
    words: tuple[TimedWord, ...]
    utterances: tuple[Utterance, ...]
    language: str | None
    languages: tuple[str, ...]


def _shape(text: str, options: TextOptions) -> str:
    if not options.punctuate:
        text = _PUNCT.sub("", text)
    if not options.capitalize:
        text = text.lower()
    return " ".join(text.split())


def _sentences(
    words: list[TimedWord], raw: list[Word], options: TextOptions
) -> tuple[Utterance, ...]:
    """Split timed words into sentences at end-of-sentence punctuation of the raw words."""
    out: list[Utterance] = []
    current: list[TimedWord] = []
    for shaped, original in zip(words, raw, strict=True):
        current.append(shaped)
        if _SENTENCE_END.search(original.text):
            out.append(_utterance(current, options))
            current = []
    if current:
        out.append(_utterance(current, options))
    return tuple(out)


def _utterance(words: list[TimedWord], options: TextOptions) -> Utterance:
    text = _shape(" ".join(w.text for w in words), options)
    return Utterance(text=text, start=words[0].start, end=words[-1].end)


def shape_transcript(hyp: Hypothesis, offset: float, options: TextOptions) -> Transcript:
    """Apply formatting and move word times from utterance-relative to session-relative."""
    raw_words = [w for w in hyp.words if _shape(w.text, options)]
    words = [
        TimedWord(
            text=_shape(w.text, options),
            start=round(offset + w.start, 3),
            end=round(offset + w.end, 3),
            confidence=w.probability,
        )
        for w in raw_words
    ]
    text = _shape(hyp.text, options)
    utterances: tuple[Utterance, ...] = ()
    if words:
        utterances = _sentences(words, raw_words, options)
    languages = hyp.language_candidates or ((hyp.language,) if hyp.language else ())
    return Transcript(text, tuple(words), utterances, hyp.language, languages)
