"""Casing of fragments Whisper writes in capitals (issue 17, item 5): text/casing.py alone
and through the shaper, with keywords, redaction and the capitalize switch."""

from __future__ import annotations

import pytest

from pulse_stt.engine.types import Hypothesis, Word
from pulse_stt.protocol import Keyword, TextOptions
from pulse_stt.text.casing import is_shouted, keyword_spellings, sentence_case
from pulse_stt.text.pipeline import TranscriptShaper
from pulse_stt.text.tokens import Token


def tokens(text: str) -> list[Token]:
    return [Token(w, i * 0.5, i * 0.5 + 0.4, 0.9) for i, w in enumerate(text.split())]


def cased(text: str, keep: frozenset[str] = frozenset(), language: str | None = "en") -> str:
    return " ".join(t.text for t in sentence_case(tokens(text), keep=keep, language=language))


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("ASK NOT!", "Ask not!"),
        ("HELLO.", "Hello."),
        ("STOP! WHAT ARE YOU DOING?", "Stop! What are you doing?"),
        ("I THINK I'M LATE.", "I think I'm late."),
        ("NASA LAUNCHED THE ROCKET.", "NASA launched the rocket."),
        ("THE FBI AND THE BBC'S NEWS.", "The FBI and the BBC's news."),
        ("CALL NBC NOW", "Call NBC now"),  # no vowel: an acronym
        ("MR. SMITH IS HERE.", "Mr. smith is here."),  # titles are not acronyms
        ("WHO ARE YOU?", "Who are you?"),  # an acronym that is also a word
        # A final that is one all-caps word: kept when an acronym, else sentence case.
        ("FBI", "FBI"),
        ("USA!", "USA!"),
        ("OK.", "OK."),
        ("FDI.", "FDI."),  # 2-4 letters alone: an acronym...
        ("YES", "Yes"),  # ...unless a common short word
        ("THANKS.", "Thanks."),  # 5 letters or more: a word
        ("NO.", "No."),
        ("HELP!", "Help!"),
        ("HELLO THERE.", "Hello there."),
    ],
)
def test_shouted_text_gets_sentence_case(model: str, expected: str) -> None:
    assert cased(model) == expected


@pytest.mark.parametrize(
    "model",
    [
        "The FBI and NASA work in the USA.",  # mixed case: acronyms and all kept
        "Ask not what your country can do for you.",
        "I",  # a single letter is not shouting
        "42 $23.50",  # no letters
        "",
    ],
)
def test_mixed_case_is_left_as_written(model: str) -> None:
    assert cased(model) == model
    assert not is_shouted(tokens(model))


def test_keyword_spellings_and_redaction_tokens_are_kept() -> None:
    keep = keyword_spellings(["gRPC", "Kubernetes", "New York"])
    assert cased("KUBERNETES USES gRPC IN New York.", keep) == "Kubernetes uses gRPC in New York."
    assert (
        cased("CALL [FIRSTNAME_1] AT [PHONENUMBER_1].") == "Call [FIRSTNAME_1] at [PHONENUMBER_1]."
    )
    # Only keywords and tokens in capitals: nothing else to judge, nothing shouted.
    assert cased("[FIRSTNAME_1] gRPC", keep) == "[FIRSTNAME_1] gRPC"


def test_only_english_capitalises_i() -> None:
    assert cased("I AM HERE AND I", language="en") == "I am here and I"
    assert cased("ICH BIN HIER", language="de") == "Ich bin hier"


def _shape(text: str, *, keywords: tuple[Keyword, ...] = (), **options: bool) -> str:
    words = tuple(Word(f" {w}", i * 0.5, i * 0.5 + 0.4, 0.9) for i, w in enumerate(text.split()))
    hyp = Hypothesis(" " + text, words, language="en")
    shaper = TranscriptShaper(
        TextOptions(word_timestamps=True, **options), itn=None, keywords=keywords
    )
    transcript = shaper.shape(hyp, 0.0, final=True)
    assert " ".join(w.text for w in transcript.words) == transcript.text
    return transcript.text


def test_the_shaper_applies_casing_with_capitalize_only() -> None:
    assert _shape("ASK NOT!") == "Ask not!"
    assert _shape("ASK NOT!", capitalize=False) == "ask not!"
    assert _shape("ASK NOT!", punctuate=False) == "Ask not"
    grpc = (Keyword("gRPC", 5.0),)
    # The keyword step fixes the keyword's case; casing leaves it, and fixes the rest.
    assert _shape("WE USE GRPC TODAY.", keywords=grpc) == "We use gRPC today."
