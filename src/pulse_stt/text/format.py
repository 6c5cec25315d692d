"""The last text stage: punctuation and casing switches, then words and sentences.

`punctuate=false` strips end-of-sentence punctuation (. , ? !) and `capitalize=false`
lowercases; both apply alike to the transcript, every word and every utterance.
Redaction tokens (`[FIRSTNAME_1]`) are left exactly as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pulse_stt.api.params import TextOptions
from pulse_stt.engine.types import Hypothesis
from pulse_stt.text.tokens import Token, render, tokens_from_hypothesis

# Sentence punctuation, not the point or comma inside a number ("3.5", "1,000").
_PUNCT = re.compile(r"[.,?!](?!\w)")
_SENTENCE_END = re.compile(r"[.?!]$")
REDACTION_TOKEN = re.compile(r"\[[A-Z]+_\d+\]")


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
    redacted_entities: tuple[str, ...] = ()


def _shape(text: str, options: TextOptions) -> str:
    if not options.punctuate:
        text = _PUNCT.sub("", text)
    if not options.capitalize:
        parts = REDACTION_TOKEN.split(text)
        kept = REDACTION_TOKEN.findall(text)
        text = "".join(p.lower() + (kept[i] if i < len(kept) else "") for i, p in enumerate(parts))
    return text


def finish(
    tokens: Sequence[Token],
    options: TextOptions,
    *,
    language: str | None,
    languages: tuple[str, ...],
    redacted_entities: tuple[str, ...] = (),
    timed: bool = True,
) -> Transcript:
    """Apply the formatting switches and build the typed transcript.

    `timed=False`: the tokens carry no real times (word timings were not decoded), so
    there are no sentence utterances either.
    """
    shaped = [(t, _shape(t.text, options)) for t in tokens]
    kept = [Token(text, t.start, t.end, t.confidence, t.glued) for t, text in shaped if text]
    words = tuple(TimedWord(t.text, t.start, t.end, round(t.confidence, 3)) for t in kept)
    sentences: list[Utterance] = []
    current: list[Token] = []
    for (original, text), in_sentence in zip(shaped, [bool(x) for _, x in shaped], strict=True):
        if in_sentence:
            current.append(
                Token(text, original.start, original.end, original.confidence, original.glued)
            )
        if _SENTENCE_END.search(original.text) and current:
            sentences.append(Utterance(render(current), current[0].start, current[-1].end))
            current = []
    if current:
        sentences.append(Utterance(render(current), current[0].start, current[-1].end))
    text = " ".join(render(kept).split())
    utterances = tuple(sentences) if timed else ()
    return Transcript(text, words, utterances, language, languages, redacted_entities)


def shape_transcript(hyp: Hypothesis, offset: float, options: TextOptions) -> Transcript:
    """Formatting only (no ITN, keywords or redaction): a hypothesis as it was decoded."""
    languages = hyp.language_candidates or ((hyp.language,) if hyp.language else ())
    return finish(
        tokens_from_hypothesis(hyp, offset),
        options,
        language=hyp.language,
        languages=languages,
        timed=bool(hyp.words),
    )
