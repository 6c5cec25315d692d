"""The last text stage: punctuation and casing switches, then words and sentences.

`punctuate=false` strips end-of-sentence punctuation (. , ? !) and `capitalize=false`
lowercases; both apply alike to the transcript, every word and every utterance.
Redaction tokens (`[FIRSTNAME_1]`) are left exactly as they are.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from pulse_stt.engine.types import Hypothesis
from pulse_stt.protocol import TextOptions
from pulse_stt.speakers.tracker import SpeakerTrack
from pulse_stt.text.sentences import ends_sentence
from pulse_stt.text.tokens import Token, render, tokens_from_hypothesis

# Sentence punctuation, not the point or comma inside a number ("3.5", "1,000").
_PUNCT = re.compile(r"[.,?!](?!\w)")
REDACTION_TOKEN = re.compile(r"\[[A-Z]+_\d+\]")


@dataclass(frozen=True)
class TimedWord:
    text: str
    start: float  # seconds since the connection's first audio byte
    end: float
    confidence: float
    speaker: int | None = None  # with diarize=true
    speaker_confidence: float | None = None


@dataclass(frozen=True)
class Utterance:
    text: str
    start: float
    end: float
    speaker: int | None = None  # with diarize=true: a sentence never spans two speakers


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
    speakers: SpeakerTrack | None = None,
) -> Transcript:
    """Apply the formatting switches and build the typed transcript.

    `timed=False`: the tokens carry no real times (word timings were not decoded), so
    there are no sentence utterances either. `speakers`: label every word; utterances
    are then also cut where the speaker changes.
    """
    shaped = [(t, _shape(t.text, options)) for t in tokens]
    labels = [speakers.label(t.start, t.end) if speakers else None for t, _ in shaped]
    kept = [
        (Token(text, t.start, t.end, t.confidence, t.glued), label)
        for (t, text), label in zip(shaped, labels, strict=True)
        if text
    ]
    words = tuple(
        TimedWord(
            t.text,
            t.start,
            t.end,
            round(t.confidence, 3),
            label[0] if label else None,
            label[1] if label else None,
        )
        for t, label in kept
    )
    sentences: list[Utterance] = []
    current: list[Token] = []
    current_speaker: int | None = None

    def close_sentence() -> None:
        nonlocal current
        if current:
            sentences.append(
                Utterance(render(current), current[0].start, current[-1].end, current_speaker)
            )
        current = []

    for (original, text), label in zip(shaped, labels, strict=True):
        speaker = label[0] if label else None
        if text and current and speaker != current_speaker:
            close_sentence()
        if text:
            current_speaker = speaker
            current.append(
                Token(text, original.start, original.end, original.confidence, original.glued)
            )
        if ends_sentence(original.text):
            close_sentence()
    close_sentence()
    kept_tokens = [t for t, _ in kept]
    text = " ".join(render(kept_tokens).split())
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
