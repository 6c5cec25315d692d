"""The transcript shaper (`text.pipeline.TranscriptShaper`): ITN → keywords → redaction → format."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from pulse_stt.api.params import parse_text_options
from pulse_stt.engine.types import Hypothesis, Word
from pulse_stt.protocol import Keyword, TextOptions
from pulse_stt.text.itn import NemoInverseNormalizer
from pulse_stt.text.pipeline import TranscriptShaper


class FakeITN(NemoInverseNormalizer):
    """An ITN that looks its (bare, lower-case) input up in a table; loads no grammar."""

    def __init__(self, table: Mapping[str, str], languages: frozenset[str] = frozenset({"en"})):
        super().__init__(Path("/nonexistent"))
        self.table = dict(table)
        self.languages = languages
        self.calls: list[tuple[str, str]] = []

    def supports(self, language: str | None) -> bool:
        return language in self.languages

    def __call__(self, text: str, language: str) -> str:
        self.calls.append((text, language))
        return self.table.get(text, text)


ITN_TABLE = {
    "it rose three point five percent": "it rose 3.5%",
    "call me at five five five one two three four": "call me at 5551234",
}


def options(**query: str) -> TextOptions:
    return parse_text_options(query, word_timestamps_default=True)


def hyp(text: str, language: str | None = "en", candidates: tuple[str, ...] = ()) -> Hypothesis:
    """Word i of `text` spans [0.5 i, 0.5 i + 0.4] s of the decoded audio."""
    words = tuple(Word(" " + w, i * 0.5, i * 0.5 + 0.4, 0.9) for i, w in enumerate(text.split()))
    return Hypothesis(" " + text, words, language, candidates)


# -- ITN -------------------------------------------------------------------------------------


def test_itn_applies_to_finals_only() -> None:
    itn = FakeITN(ITN_TABLE)
    shaper = TranscriptShaper(options(itn_normalize="true"), itn=itn)
    partial = shaper.shape(hyp("It rose three point five percent."), 0.0, final=False)
    assert partial.text == "It rose three point five percent."
    assert itn.calls == []
    final = shaper.shape(hyp("It rose three point five percent."), 0.0, final=True)
    assert final.text == "It rose 3.5%."
    assert itn.calls == [("it rose three point five percent", "en")]


@pytest.mark.parametrize(
    ("query", "applied"),
    [
        ({}, False),  # numerals=auto, itn_normalize=false
        ({"itn_normalize": "true"}, True),
        ({"numerals": "true"}, True),
        ({"numerals": "false"}, False),
        ({"numerals": "auto"}, False),
        ({"numerals": "true", "format": "false"}, False),
        ({"itn_normalize": "true", "format": "false"}, False),
    ],
)
def test_which_options_turn_itn_on(query: dict[str, str], applied: bool) -> None:
    itn = FakeITN(ITN_TABLE)
    shaper = TranscriptShaper(options(**query), itn=itn)
    text = shaper.shape(hyp("it rose three point five percent"), 0.0, final=True).text
    assert text == ("it rose 3.5%" if applied else "it rose three point five percent")
    assert bool(itn.calls) == applied
    assert shaper.heavy == applied


def test_itn_skips_unsupported_or_unknown_languages() -> None:
    itn = FakeITN(ITN_TABLE, languages=frozenset({"en"}))
    shaper = TranscriptShaper(options(itn_normalize="true"), itn=itn)
    for language in ("it", None):
        out = shaper.shape(hyp("it rose three point five percent", language), 0.0, final=True)
        assert out.text == "it rose three point five percent"
    assert itn.calls == []


def test_itn_gets_the_hypothesis_language() -> None:
    itn = FakeITN({}, languages=frozenset({"de"}))
    TranscriptShaper(options(itn_normalize="true"), itn=itn).shape(
        hyp("Es kostet fünf Euro", "de"), 0.0, final=True
    )
    assert itn.calls == [("es kostet fünf euro", "de")]


def test_itn_wanted_but_not_available() -> None:
    shaper = TranscriptShaper(options(itn_normalize="true"), itn=None)
    assert not shaper.heavy
    out = shaper.shape(hyp("it rose three point five percent"), 0.0, final=True)
    assert out.text == "it rose three point five percent"


def test_itn_span_times_in_the_transcript_words() -> None:
    shaper = TranscriptShaper(options(itn_normalize="true"), itn=FakeITN(ITN_TABLE))
    out = shaper.shape(hyp("It rose three point five percent."), 10.0, final=True)
    assert [(w.text, w.start, w.end) for w in out.words] == [
        ("It", 10.0, 10.4),
        ("rose", 10.5, 10.9),
        ("3.5%.", 11.0, 12.9),
    ]


# -- redaction -------------------------------------------------------------------------------


def test_redaction_runs_after_itn() -> None:
    itn = FakeITN(ITN_TABLE)
    shaper = TranscriptShaper(options(itn_normalize="true", redact_pii="true"), itn=itn)
    out = shaper.shape(hyp("Call me at five five five one two three four."), 0.0, final=True)
    assert itn.calls == [("call me at five five five one two three four", "en")]  # unredacted
    assert out.text == "Call me at [PHONENUMBER_1]."
    assert out.redacted_entities == ("[PHONENUMBER_1]",)
    assert (out.words[-1].start, out.words[-1].end) == (1.5, 4.9)  # "five" .. "four."


def test_redaction_on_partials_does_not_consume_numbers() -> None:
    shaper = TranscriptShaper(options(redact_pii="true"), itn=None)
    assert shaper.heavy
    partial = shaper.shape(hyp("call 415-555-2671"), 0.0, final=False)
    assert partial.text == "call [PHONENUMBER_1]"
    assert partial.redacted_entities == ("[PHONENUMBER_1]",)
    final = shaper.shape(hyp("call 212-555-0199"), 0.0, final=True)
    assert final.text == "call [PHONENUMBER_1]"
    final = shaper.shape(hyp("call 415-555-2671"), 0.0, final=True)
    assert final.text == "call [PHONENUMBER_2]"
    again = shaper.shape(hyp("so 212-555-0199"), 0.0, final=False)
    assert again.text == "so [PHONENUMBER_1]"  # a committed value keeps its label in partials


def test_redacted_entities_in_order() -> None:
    shaper = TranscriptShaper(options(redact_pii="true", redact_pci="true"), itn=None)
    out = shaper.shape(
        hyp("My name is John Smith and my card is 4111111111111111."), 0.0, final=True
    )
    assert out.text == "My name is [FIRSTNAME_1] [LASTNAME_1] and my card is [ACCOUNTNUMBER_1]."
    assert out.redacted_entities == ("[FIRSTNAME_1]", "[LASTNAME_1]", "[ACCOUNTNUMBER_1]")


def test_no_redaction_no_entities() -> None:
    out = TranscriptShaper(options(), itn=None).shape(hyp("My name is John Smith."), 0, final=True)
    assert out.text == "My name is John Smith."
    assert out.redacted_entities == ()


def test_capitalize_false_keeps_redaction_tokens() -> None:
    shaper = TranscriptShaper(options(capitalize="false", redact_pii="true"), itn=None)
    out = shaper.shape(hyp("My name is John Smith."), 0.0, final=True)
    assert out.text == "my name is [FIRSTNAME_1] [LASTNAME_1]."
    assert [w.text for w in out.words] == ["my", "name", "is", "[FIRSTNAME_1]", "[LASTNAME_1]."]


def test_punctuate_false_with_redaction() -> None:
    shaper = TranscriptShaper(options(punctuate="false", redact_pii="true"), itn=None)
    out = shaper.shape(hyp("My name is John Smith."), 0.0, final=True)
    assert out.text == "My name is [FIRSTNAME_1] [LASTNAME_1]"


# -- keywords and formatting -----------------------------------------------------------------


def test_keywords_are_snapped_on_partials_and_finals() -> None:
    shaper = TranscriptShaper(options(), itn=None, keywords=[Keyword("gRPC", 1)])
    assert not shaper.heavy
    for final in (False, True):
        assert shaper.shape(hyp("we use grpc here"), 0.0, final=final).text == "we use gRPC here"


def test_punctuate_false_keeps_decimal_points() -> None:
    hypothesis = Hypothesis(
        " It rose 3.5% today.",
        (
            Word(" It", 0.0, 0.2, 0.9),
            Word(" rose", 0.2, 0.4, 0.8),
            Word(" 3", 0.4, 0.5, 0.7),
            Word(".5", 0.5, 0.6, 0.95),
            Word("%", 0.6, 0.7, 0.6),
            Word(" today.", 0.7, 1.0, 0.9),
        ),
        "en",
    )
    out = TranscriptShaper(options(punctuate="false"), itn=None).shape(hypothesis, 2.0, final=True)
    assert out.text == "It rose 3.5% today"
    assert [(w.text, w.start, w.end, w.confidence) for w in out.words][2] == ("3.5%", 2.4, 2.7, 0.6)


def test_languages_and_utterances() -> None:
    shaper = TranscriptShaper(options(), itn=None)
    out = shaper.shape(hyp("Hello there. How are you?", "en", ("en", "de")), 1.0, final=True)
    assert out.language == "en"
    assert out.languages == ("en", "de")
    assert [(u.text, u.start, u.end) for u in out.utterances] == [
        ("Hello there.", 1.0, 1.9),
        ("How are you?", 2.0, 3.4),
    ]
    single = shaper.shape(hyp("Hi.", "fr"), 0.0, final=True)
    assert single.languages == ("fr",)
    assert shaper.shape(hyp("Hi.", None), 0.0, final=True).languages == ()


def test_untimed_hypothesis_has_no_utterances() -> None:
    out = TranscriptShaper(options(), itn=None).shape(Hypothesis("Hello there."), 5.0, final=True)
    assert out.text == "Hello there."
    assert out.utterances == ()
    assert [(w.start, w.end) for w in out.words] == [(5.0, 5.0), (5.0, 5.0)]


def test_heavy() -> None:
    itn = FakeITN({})
    assert not TranscriptShaper(options(), itn=itn).heavy  # ITN not asked for
    assert TranscriptShaper(options(numerals="true"), itn=itn).heavy
    assert TranscriptShaper(options(redact_pci="true"), itn=None).heavy
    assert not TranscriptShaper(options(format="false", numerals="true"), itn=itn).heavy
