"""Inverse text normalization (`text.itn`): mapping a normalizer's output back onto tokens.

Most tests use a fake normalizer (a dict lookup) so they test the alignment alone; one
module-scoped fixture loads NeMo's real English grammar from the shared cache.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from pulse_stt.text.itn import NemoInverseNormalizer, apply_itn
from pulse_stt.text.tokens import Token, render


def toks(text: str) -> list[Token]:
    """One token per word: word i spans [i, i + 0.5] s with confidence 0.9 - i/100."""
    return [
        Token(w, float(i), i + 0.5, round(0.9 - i / 100, 2)) for i, w in enumerate(text.split())
    ]


class FakeNormalizer:
    """A normalizer that looks its input up in a table (unknown input comes back as is)."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table
        self.calls: list[tuple[str, str]] = []

    def __call__(self, text: str, language: str) -> str:
        self.calls.append((text, language))
        return self.table.get(text, text)


PHONE = {"call me at five five five one two three four": "call me at 5551234"}


def test_normalizer_sees_bare_lower_case_words() -> None:
    fake = FakeNormalizer({})
    apply_itn(toks('"Call me at FIVE, please!"'), "en", fake)
    assert fake.calls == [("call me at five please", "en")]


def test_unchanged_output_returns_the_tokens_as_they_were() -> None:
    tokens = toks("Hello, World! How ARE you?")
    assert apply_itn(tokens, "en", FakeNormalizer({})) == tokens


def test_rewritten_span_becomes_one_token_with_the_span_times() -> None:
    tokens = toks("call me at five five five one two three four")
    out = apply_itn(tokens, "en", FakeNormalizer(PHONE))
    assert [t.text for t in out] == ["call", "me", "at", "5551234"]
    assert out[:3] == tokens[:3]  # untouched words are the very same tokens
    number = out[3]
    assert (number.start, number.end) == (3.0, 9.5)  # first "five" .. last "four"
    assert number.confidence == min(t.confidence for t in tokens[3:])


def test_rewritten_span_keeps_trailing_punctuation_and_capital() -> None:
    out = apply_itn(
        toks("Call me at five five five one two three four."), "en", FakeNormalizer(PHONE)
    )
    assert render(out) == "Call me at 5551234."
    assert out[0].text == "Call"  # unchanged word keeps its capital


def test_capital_of_the_first_replaced_word_carries_over() -> None:
    fake = FakeNormalizer({"doctor jones arrived": "dr. jones arrived"})
    out = apply_itn(toks("Doctor Jones arrived."), "en", fake)
    assert render(out) == "Dr. Jones arrived."
    assert (out[0].start, out[0].end) == (0.0, 0.5)
    # a lower-case source stays lower case
    out = apply_itn(toks("doctor Jones arrived."), "en", fake)
    assert render(out) == "dr. Jones arrived."


def test_leading_and_trailing_brackets_and_inner_punctuation_are_kept() -> None:
    fake = FakeNormalizer({"twenty five apples": "25 apples", "five dollars please": "$5 please"})
    assert render(apply_itn(toks("(twenty five) apples"), "en", fake)) == "(25) apples"
    assert render(apply_itn(toks("Five dollars, please."), "en", fake)) == "$5, please."


def test_english_hyphenated_number_words_are_split_for_the_normalizer() -> None:
    fake = FakeNormalizer({"it costs twenty five dollars": "it costs $25"})
    out = apply_itn(toks("It costs twenty-five dollars."), "en", fake)
    assert fake.calls == [("it costs twenty five dollars", "en")]
    assert render(out) == "It costs $25."
    assert (out[-1].start, out[-1].end) == (2.0, 3.5)


def test_hyphenated_number_alone_maps_back_onto_its_token() -> None:
    fake = FakeNormalizer(
        {"i have twenty five cats and twenty six dogs": "i have 25 cats and 26 dogs"}
    )
    out = apply_itn(toks("I have twenty-five cats and twenty-six dogs"), "en", fake)
    assert [t.text for t in out] == ["I", "have", "25", "cats", "and", "26", "dogs"]
    assert [(t.start, t.end) for t in out] == [(float(i), i + 0.5) for i in range(7)]


@pytest.mark.parametrize("word", ["ill-disposed", "forty-niners", "hundred-year"])
def test_other_hyphenated_words_stay_whole(word: str) -> None:
    fake = FakeNormalizer({})
    apply_itn(toks(f"the {word} men"), "en", fake)
    assert fake.calls == [(f"the {word} men", "en")]


def test_hyphen_splitting_is_for_english_only() -> None:
    fake = FakeNormalizer({})
    apply_itn(toks("twenty-five"), "de", fake)
    assert fake.calls == [("twenty-five", "de")]


def test_pure_punctuation_tokens_survive() -> None:
    fake = FakeNormalizer({"well — twenty five": "well — 25"})
    out = apply_itn(toks("Well — twenty five ."), "en", fake)
    assert [t.text for t in out] == ["Well", "—", "25", "."]
    assert out[-1] == Token(".", 4.0, 4.5, 0.86)


def test_only_punctuation_is_left_alone_without_calling_the_normalizer() -> None:
    fake = FakeNormalizer({})
    tokens = [Token(".", 0, 1, 1.0), Token("?!", 1, 2, 1.0)]
    assert apply_itn(tokens, "en", fake) == tokens
    assert fake.calls == []


def test_several_written_words_share_the_span() -> None:
    fake = FakeNormalizer({"one two three": "1 2 3"})
    out = apply_itn(toks("one two three"), "en", fake)
    assert [t.text for t in out] == ["1", "2", "3"]
    assert out[0].start == 0.0 and out[-1].end == 2.5
    assert all(a.end <= b.start for a, b in itertools.pairwise(out))


def test_insertion_in_the_middle_sits_at_the_previous_word_end() -> None:
    fake = FakeNormalizer({"hello world": "hello big world"})
    out = apply_itn(toks("hello world"), "en", fake)
    assert [t.text for t in out] == ["hello", "big", "world"]
    assert (out[1].start, out[1].end) == (0.5, 0.5)
    assert out[2] == Token("world", 1.0, 1.5, 0.89)


def test_deleted_word_disappears() -> None:
    fake = FakeNormalizer({"um twenty five": "25"})
    out = apply_itn(toks("um twenty five"), "en", fake)
    assert [t.text for t in out] == ["25"]
    assert (out[0].start, out[0].end) == (0.0, 2.5)


def test_insertion_at_the_start_keeps_times_in_order() -> None:
    fake = FakeNormalizer({"hello world": "well hello world"})
    out = apply_itn(toks("hello world"), "en", fake)
    assert [t.text for t in out] == ["well", "hello", "world"]
    assert [t.start for t in out] == sorted(t.start for t in out)


def test_partly_rewritten_hyphenated_token_is_not_duplicated() -> None:
    fake = FakeNormalizer({"it is one third full": "it is one 3rd full"})
    out = apply_itn(toks("It is one-third full."), "en", fake)
    text = render(out)
    assert not ("one-third" in text and "3rd" in text), text
    assert [t.start for t in out] == sorted(t.start for t in out)


# -- the real NeMo grammar ------------------------------------------------------------------


@pytest.fixture(scope="module")
def nemo() -> NemoInverseNormalizer:
    normalizer = NemoInverseNormalizer(Path.home() / ".cache" / "pulse-stt" / "itn")
    normalizer.warm("en")  # compiled once into the cache (~15 s), loaded afterwards (~2-6 s)
    return normalizer


def test_nemo_supported_languages() -> None:
    normalizer = NemoInverseNormalizer(Path("/nonexistent"))  # supports() loads nothing
    for language in ("en", "de", "fr", "es", "pt", "ru"):
        assert normalizer.supports(language), language
    for language in ("it", "nl", None):
        assert not normalizer.supports(language), language


@pytest.mark.parametrize(
    ("spoken", "check"),
    [
        (
            "I paid twenty five dollars on March third.",
            lambda text: (
                "$25" in text and "3" in text and text.endswith(".") and "twenty" not in text
            ),
        ),
        ("It costs twenty-five dollars.", lambda text: text == "It costs $25."),
        (
            "Call me at five five five one two three four.",
            lambda text: text == "Call me at 5551234.",
        ),
        (
            "He was not an ill-disposed young man.",
            lambda text: text == "He was not an ill-disposed young man.",
        ),
        ("Hello world.", lambda text: text == "Hello world."),
    ],
)
def test_nemo_english(
    nemo: NemoInverseNormalizer, spoken: str, check: Callable[[str], bool]
) -> None:
    tokens = toks(spoken)
    out = apply_itn(tokens, "en", nemo)
    text = render(out)
    assert check(text), text
    assert out[0].start == tokens[0].start
    assert out[-1].end == tokens[-1].end


def test_nemo_keeps_untouched_words_exactly(nemo: NemoInverseNormalizer) -> None:
    tokens = toks("I paid twenty five dollars on March third.")
    out = apply_itn(tokens, "en", nemo)
    assert out[:2] == tokens[:2]  # "I", "paid"
    assert Token("March", 6.0, 6.5, 0.84) in out
    dollars = next(t for t in out if "$25" in t.text)
    assert (dollars.start, dollars.end) == (2.0, 4.5)


def test_nemo_partly_rewritten_hyphenated_token(nemo: NemoInverseNormalizer) -> None:
    text = render(apply_itn(toks("It is one-third full."), "en", nemo))
    assert not ("one-third" in text and "3rd" in text), text
