"""Transcript tokens (`text.tokens`): building them from a hypothesis, rendering, spans."""

from __future__ import annotations

import pytest

from pulse_stt.engine.types import Hypothesis, Word
from pulse_stt.text.tokens import Token, render, span_tokens, tokens_from_hypothesis, with_text


def test_words_become_session_relative_tokens() -> None:
    hyp = Hypothesis(
        " Hello there.",
        (Word(" Hello", 0.12, 0.5, 0.9), Word(" there.", 0.5, 0.98, 0.8)),
    )
    assert tokens_from_hypothesis(hyp, 10.0) == [
        Token("Hello", 10.12, 10.5, 0.9),
        Token("there.", 10.5, 10.98, 0.8),
    ]


def test_offset_is_added_and_rounded_to_milliseconds() -> None:
    hyp = Hypothesis("a", (Word("a", 0.1, 0.2, 1.0),))
    (token,) = tokens_from_hypothesis(hyp, 0.2)
    # 0.2 + 0.1 is 0.30000000000000004 in floats: the token carries 0.3
    assert token.start == 0.3
    assert token.end == 0.4


def test_glued_pieces_merge_into_one_token() -> None:
    hyp = Hypothesis(
        " It rose 3.5% today.",
        (
            Word(" It", 0.0, 0.2, 0.9),
            Word(" rose", 0.2, 0.4, 0.8),
            Word(" 3", 0.4, 0.5, 0.7),
            Word(".5", 0.5, 0.6, 0.95),
            Word("%", 0.6, 0.7, 0.6),
            Word(" today.", 0.7, 1.0, 0.9),
        ),
    )
    tokens = tokens_from_hypothesis(hyp, 2.0)
    assert [t.text for t in tokens] == ["It", "rose", "3.5%", "today."]
    merged = tokens[2]
    assert (merged.start, merged.end) == (2.4, 2.7)  # first piece's start, last piece's end
    assert merged.confidence == 0.6  # the weakest piece
    assert not merged.glued  # "3.5%" itself follows a space
    assert render(tokens) == "It rose 3.5% today."


def test_glued_at_the_very_start_merges_too() -> None:
    hyp = Hypothesis(
        "3.5% up", (Word("3", 0, 0.1, 0.9), Word(".5%", 0.1, 0.3, 0.9), Word(" up", 0.3, 0.5, 0.9))
    )
    assert [t.text for t in tokens_from_hypothesis(hyp, 0.0)] == ["3.5%", "up"]


def test_spaced_words_with_the_same_text_do_not_merge() -> None:
    hyp = Hypothesis(
        "no no no",
        (Word("no", 0.0, 0.1, 0.9), Word(" no", 0.2, 0.3, 0.9), Word(" no", 0.4, 0.5, 0.9)),
    )
    tokens = tokens_from_hypothesis(hyp, 0.0)
    assert [t.text for t in tokens] == ["no", "no", "no"]
    assert [t.start for t in tokens] == [0.0, 0.2, 0.4]


def test_blank_words_are_skipped() -> None:
    hyp = Hypothesis(
        "hi there",
        (Word("hi", 0, 0.1, 0.9), Word("  ", 0.1, 0.2, 0.1), Word(" there", 0.2, 0.4, 0.8)),
    )
    assert [t.text for t in tokens_from_hypothesis(hyp, 0.0)] == ["hi", "there"]


def test_without_words_tokens_come_from_the_text_at_the_offset() -> None:
    hyp = Hypothesis("  hello   there ")
    assert tokens_from_hypothesis(hyp, 3.25) == [
        Token("hello", 3.25, 3.25, 1.0),
        Token("there", 3.25, 3.25, 1.0),
    ]


def test_empty_hypothesis_has_no_tokens() -> None:
    assert tokens_from_hypothesis(Hypothesis(""), 1.0) == []


def test_render_joins_with_spaces_except_glued_tokens() -> None:
    tokens = [
        Token("Call", 0, 1, 1.0),
        Token("me", 1, 2, 1.0),
        Token("!", 2, 3, 1.0, glued=True),
    ]
    assert render(tokens) == "Call me!"
    assert render([]) == ""
    # a glued first token has nothing to glue to
    assert render([Token("x", 0, 1, 1.0, glued=True), Token("y", 1, 2, 1.0)]) == "x y"


def test_span_tokens_share_the_span_evenly() -> None:
    source = [
        Token("one", 1.0, 1.4, 0.9),
        Token("two", 1.5, 1.9, 0.7),
        Token("three", 2.0, 2.5, 0.8),
    ]
    out = span_tokens(source, ["1", "2", "3"])
    assert [t.text for t in out] == ["1", "2", "3"]
    assert [(t.start, t.end) for t in out] == [(1.0, 1.5), (1.5, 2.0), (2.0, 2.5)]
    assert {t.confidence for t in out} == {0.7}


def test_span_tokens_single_text_covers_the_whole_span() -> None:
    source = [Token("a", 0.333, 0.5, 0.9, glued=True), Token("b", 0.6, 1.111, 0.95)]
    (out,) = span_tokens(source, ["X"])
    assert out == Token("X", 0.333, 1.111, 0.9, glued=True)  # keeps the first token's glue


def test_span_tokens_only_the_first_can_be_glued() -> None:
    source = [Token("a", 0.0, 1.0, 0.9, glued=True)]
    out = span_tokens(source, ["x", "y"])
    assert [t.glued for t in out] == [True, False]


def test_span_tokens_of_nothing_is_nothing() -> None:
    assert span_tokens([Token("a", 0, 1, 1.0)], []) == []


def test_with_text_changes_only_the_text() -> None:
    token = Token("a", 1.0, 2.0, 0.5, glued=True)
    assert with_text(token, "b") == Token("b", 1.0, 2.0, 0.5, glued=True)
    with pytest.raises(AttributeError):
        token.text = "c"  # type: ignore[misc]  # frozen
