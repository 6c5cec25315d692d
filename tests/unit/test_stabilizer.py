"""`pulse_stt.stream.stabilizer.PartialStabilizer`: LocalAgreement over partial passes."""

from __future__ import annotations

from pulse_stt.engine.types import Hypothesis, Word
from pulse_stt.stream.stabilizer import (
    RESETTLE_AFTER_S,
    STITCH_AFTER_S,
    TRIM_AFTER_S,
    PartialRequest,
    PartialStabilizer,
)


def hyp(*words: tuple[str, float, float], language: str = "en") -> Hypothesis:
    ws = tuple(Word(t, s, e, 0.9) for t, s, e in words)
    return Hypothesis(" ".join(w.text for w in ws), ws, language, (language,))


def texts(h: Hypothesis) -> list[str]:
    return [w.text for w in h.words]


def test_words_two_passes_agree_on_are_never_revised() -> None:
    stab = PartialStabilizer()
    first = stab.update(0, hyp(("he", 0.0, 0.2), ("was", 0.2, 0.4), ("not", 0.4, 0.6)), 0.0)
    assert texts(first) == ["he", "was", "not"]
    second = stab.update(
        0, hyp(("he", 0.0, 0.2), ("was", 0.2, 0.4), ("now", 0.4, 0.6), ("an", 0.6, 0.7)), 0.0
    )
    # "he was" agreed twice: committed. The tail follows the newest pass.
    assert texts(second) == ["he", "was", "now", "an"]
    third = stab.update(
        0, hyp(("the", 0.0, 0.2), ("was", 0.2, 0.4), ("not", 0.4, 0.6), ("an", 0.6, 0.7)), 0.0
    )
    assert texts(third)[:2] == ["he", "was"]  # a later pass cannot change committed words
    assert texts(third)[2:] == ["not", "an"]
    assert third.text == "he was not an"


def test_request_trims_after_enough_committed_audio() -> None:
    stab = PartialStabilizer()
    words = [(f"w{i}", i * 0.5, i * 0.5 + 0.4) for i in range(10)]
    assert stab.request(0).start_s == 0.0
    stab.update(0, hyp(*words), 0.0)
    stab.update(0, hyp(*words), 0.0)  # all ten agreed: committed up to 4.9 s
    request = stab.request(0)
    assert request.start_s == 4.9 >= TRIM_AFTER_S
    assert request.prompt is not None and request.prompt.endswith("w8 w9")
    # A pass over the trimmed audio: times are relative to its start; a repeated head
    # (the model saying the prompt's last word again) is dropped.
    merged = stab.update(0, hyp(("w9", 0.0, 0.1), ("next", 0.2, 0.5)), request.start_s)
    assert texts(merged) == [f"w{i}" for i in range(10)] + ["next"]
    assert merged.words[-1].start == 5.1 and merged.words[-1].end == 5.4


def test_new_turn_starts_afresh() -> None:
    stab = PartialStabilizer()
    stab.update(0, hyp(("a", 0.0, 0.2)), 0.0)
    stab.update(0, hyp(("a", 0.0, 0.2)), 0.0)
    assert stab.committed_end == 0.2
    shown = stab.update(1, hyp(("b", 0.0, 0.2)), 0.0)
    assert texts(shown) == ["b"]
    assert stab.committed_end == 0.0


def test_no_space_languages_join_without_spaces() -> None:
    stab = PartialStabilizer()
    shown = stab.update(0, hyp(("你好", 0.0, 0.3), ("世界", 0.3, 0.6), language="zh"), 0.0)
    assert shown.text == "你好世界"


def test_empty_pass_shows_nothing_and_agrees_on_nothing() -> None:
    stab = PartialStabilizer()
    stab.update(0, hyp(("yes", 0.0, 0.3), ("we", 0.3, 0.5)), 0.0)
    assert stab.update(0, Hypothesis("", (), "en"), 0.0).is_empty
    assert stab.committed_end == 0.0  # an empty pass is no second opinion
    shown = stab.update(0, hyp(("yes", 0.0, 0.3), ("well", 0.3, 0.5)), 0.0)
    assert texts(shown) == ["yes", "well"]
    assert stab.committed_end == 0.3


def test_finals_keep_only_what_final_quality_passes_settled() -> None:
    stab = PartialStabilizer()
    words = [(f"w{i}", i * 0.5, i * 0.5 + 0.4) for i in range(8)]
    stab.update(0, hyp(*words), 0.0)
    stab.update(0, hyp(*words), 0.0)  # committed by two greedy passes: not settled
    assert stab.committed_end == 3.9
    assert stab.final_request(0, 6.0) == PartialRequest(0.0, None)
    # A speculative pass up to the pause at 4.2 s settles its words.
    spoken = hyp(*words)
    shown = stab.settle(0, spoken, 4.2)
    assert texts(shown) == [f"w{i}" for i in range(8)]
    request = stab.final_request(0, 6.0)
    assert request.start_s == 4.2 and len(request.committed) == 8
    assert request.prompt is not None and request.prompt.endswith("w6 w7")
    # The final's pass (times relative to 4.2 s) comes after the settled words. It starts
    # in a pause, so a word it hears again was said again: kept.
    tail = hyp(("w7", 0.1, 0.2), ("w8", 0.3, 0.6), ("w9", 0.7, 1.1))
    whole = stab.stitch(request, tail)
    assert texts(whole) == [f"w{i}" for i in range(8)] + ["w7", "w8", "w9"]
    assert whole.words[-1].start == 4.9 and whole.text == " ".join(texts(whole))
    # A final that ends before the settled pause (a cut) decodes its whole audio.
    assert stab.final_request(0, 4.0) == PartialRequest(0.0, None)


def test_a_pause_right_after_a_settled_one_is_not_worth_a_pass() -> None:
    stab = PartialStabilizer()
    assert stab.worth_settling(0, 1.0)  # nothing settled yet: always
    stab.settle(0, hyp(("a", 0.0, 2.5)), 3.0)
    assert not stab.worth_settling(0, 3.0 + RESETTLE_AFTER_S - 0.5)
    assert stab.worth_settling(0, 3.0 + RESETTLE_AFTER_S)
    # Settled words too short to decode after: the next pause settles again.
    short = PartialStabilizer()
    short.settle(0, hyp(("a", 0.0, 0.5)), STITCH_AFTER_S - 1.0)
    assert short.worth_settling(0, STITCH_AFTER_S - 0.5)
    assert short.final_request(0, 5.0).start_s == 0.0


def test_hyphenated_words_stay_one_word() -> None:
    stab = PartialStabilizer()
    words = (
        Word("not", 0.0, 0.2, 0.9),
        Word("ill", 0.3, 0.5, 0.9),
        Word("-disposed", 0.5, 0.9, 0.8),
    )
    shown = stab.update(0, Hypothesis("not ill-disposed", words, "en", ("en",)), 0.0)
    assert shown.text == "not ill-disposed"
    assert texts(shown) == ["not", "ill-disposed"] and shown.words[-1].end == 0.9
