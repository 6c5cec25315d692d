"""Keyword boosting (`text.keywords`): the decoder glossary and snapping near misses."""

from __future__ import annotations

import itertools

import pytest
from rapidfuzz import fuzz

from pulse_stt.protocol import Keyword
from pulse_stt.text.keywords import apply_keywords, hotwords_prompt, required_similarity
from pulse_stt.text.tokens import Token, render


def toks(text: str) -> list[Token]:
    """One token per word: word i spans [i, i + 0.5] s with confidence 0.9 - i/100."""
    return [
        Token(w, float(i), i + 0.5, round(0.9 - i / 100, 2)) for i, w in enumerate(text.split())
    ]


def snapped(text: str, *keywords: Keyword) -> str:
    return render(apply_keywords(toks(text), keywords))


# -- the decoder prompt ----------------------------------------------------------------------


def test_prompt_is_none_without_boosted_keywords() -> None:
    assert hotwords_prompt([]) is None
    assert hotwords_prompt([Keyword("gRPC", 0), Keyword("Kubernetes", 0.0)]) is None


def test_prompt_lists_strongest_first_and_skips_zero() -> None:
    keywords = [
        Keyword("Kubernetes", 2),
        Keyword("off", 0),
        Keyword("gRPC", 10),
        Keyword("New York", 5),
    ]
    assert hotwords_prompt(keywords) == "Glossary: gRPC, New York, Kubernetes."


def test_prompt_ties_keep_the_given_order() -> None:
    keywords = [Keyword("Beta", 3), Keyword("Alpha", 3), Keyword("Gamma", 3)]
    assert hotwords_prompt(keywords) == "Glossary: Beta, Alpha, Gamma."


def test_prompt_respects_the_word_budget() -> None:
    # 30 three-word phrases: only 20 (60 words) fit; the strongest ones are those kept
    keywords = [Keyword(f"term{i} alpha beta", 20 - i * 0.5) for i in range(30)]
    prompt = hotwords_prompt(keywords)
    assert prompt is not None
    body = prompt.removeprefix("Glossary: ").removesuffix(".")
    phrases = body.split(", ")
    assert phrases == [f"term{i} alpha beta" for i in range(20)]
    assert len(body.split()) == 60


def test_prompt_never_exceeds_the_word_budget() -> None:
    long_phrase = " ".join(["word"] * 61)
    assert hotwords_prompt([Keyword(long_phrase, 5)]) is None
    prompt = hotwords_prompt([Keyword("short", 1), Keyword(long_phrase, 5)])
    assert prompt is None or long_phrase not in prompt


# -- required similarity ---------------------------------------------------------------------


def test_required_similarity_falls_as_the_intensifier_rises() -> None:
    values = [required_similarity(i) for i in range(21)]
    assert all(a > b for a, b in itertools.pairwise(values))
    # the documented points: 88 % at 1, 81 % at 6, 60 % at 20
    assert required_similarity(1) == pytest.approx(88.5)
    assert required_similarity(6) == pytest.approx(81.0)
    assert required_similarity(20) == pytest.approx(60.0)


# -- snapping --------------------------------------------------------------------------------


def test_exact_match_in_another_case_takes_the_keyword_case() -> None:
    tokens = toks("we use grpc here")
    out = apply_keywords(tokens, [Keyword("gRPC", 1)])
    assert [t.text for t in out] == ["we", "use", "gRPC", "here"]
    assert out[2] == Token("gRPC", 2.0, 2.5, 0.88)
    assert out[0] is tokens[0] and out[3] is tokens[3]


def test_near_miss_is_replaced_at_a_moderate_intensifier() -> None:
    assert 81.0 <= fuzz.ratio("protobof", "protobuf") < 88.5
    assert (
        snapped("Protobof files are small.", Keyword("Protobuf", 6)) == "Protobuf files are small."
    )
    assert (
        snapped("Protobof files are small.", Keyword("Protobuf", 1)) == "Protobof files are small."
    )


def test_multi_word_window_snaps_to_one_keyword() -> None:
    score = fuzz.ratio("cubernetties", "kubernetes")
    assert required_similarity(20) <= score < required_similarity(1)
    tokens = toks("deploy on cuber netties now")
    out = apply_keywords(tokens, [Keyword("Kubernetes", 20)])
    assert [t.text for t in out] == ["deploy", "on", "Kubernetes", "now"]
    assert (out[2].start, out[2].end) == (2.0, 3.5)  # "cuber" .. "netties"
    assert out[2].confidence == 0.87


def test_trailing_punctuation_is_kept() -> None:
    assert snapped("Deploy on cuber netties.", Keyword("Kubernetes", 20)) == "Deploy on Kubernetes."
    assert snapped("is it grpc?", Keyword("gRPC", 1)) == "is it gRPC?"


@pytest.mark.parametrize(
    ("text", "keyword", "strong", "weak"),
    [
        (
            "deploy on cuber netties now",
            "Kubernetes",
            "deploy on Kubernetes now",
            "deploy on cuber netties now",
        ),
        ("Kafker streams are fast", "Kafka", "Kafka streams are fast", "Kafker streams are fast"),
    ],
)
def test_intensifier_scales_the_effect(text: str, keyword: str, strong: str, weak: str) -> None:
    assert snapped(text, Keyword(keyword, 20)) == strong
    assert snapped(text, Keyword(keyword, 1)) == weak


def test_unrelated_words_are_untouched() -> None:
    tokens = toks("the new cluster is up")
    assert apply_keywords(tokens, [Keyword("Kubernetes", 20)]) == tokens


def test_intensifier_zero_changes_nothing() -> None:
    tokens = toks("we use grpc and protobof")
    assert apply_keywords(tokens, [Keyword("gRPC", 0), Keyword("Protobuf", 0)]) == tokens


def test_short_keywords_only_match_exactly() -> None:
    # "awz" is 67 % like "aws", above the 60 % of intensifier 20, but the keyword is short
    assert fuzz.ratio("awz", "aws") >= required_similarity(20)
    assert snapped("awz is down", Keyword("AWS", 20)) == "awz is down"
    assert snapped("aws is down", Keyword("AWS", 20)) == "AWS is down"


def test_multi_word_keyword_exact_match_gets_its_case() -> None:
    tokens = toks("talk to new york office")
    out = apply_keywords(tokens, [Keyword("New York", 1)])
    assert [t.text for t in out] == ["talk", "to", "New York", "office"]
    assert (out[2].start, out[2].end) == (2.0, 3.5)


def test_several_keywords_apply_together() -> None:
    assert (
        snapped("Protobof over grpc", Keyword("gRPC", 1), Keyword("Protobuf", 6))
        == "Protobuf over gRPC"
    )


def test_empty_keyword_phrase_does_nothing() -> None:
    tokens = toks("hello there")
    assert apply_keywords(tokens, [Keyword("!!", 20)]) == tokens


@pytest.mark.parametrize(
    ("text", "keyword", "expected"),
    [
        ("we need a grpc server", Keyword("gRPC", 1), "we need a gRPC server"),
        ("deploy to kubernetes today", Keyword("Kubernetes", 1), "deploy to Kubernetes today"),
        (
            "deploy the kubernetes cluster",
            Keyword("Kubernetes", 6),
            "deploy the Kubernetes cluster",
        ),
    ],
)
def test_word_before_a_keyword_is_not_swallowed(text: str, keyword: Keyword, expected: str) -> None:
    assert snapped(text, keyword) == expected
