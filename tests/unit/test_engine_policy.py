"""Window sizes of `pulse_stt.engine.transcriber` and the hallucination guard of
`pulse_stt.engine.guard` (no model needed)."""

from __future__ import annotations

import pytest

from pulse_stt.engine.guard import Verdict, judge, repeats_itself
from pulse_stt.engine.transcriber import WINDOW_SAMPLES, WindowPolicy

RATE = 16_000


@pytest.mark.parametrize(
    ("audio_s", "final", "window_s"),
    [
        (0.5, True, 15),  # short finals still get the 15 s minimum
        (13.9, True, 15),
        (14.5, True, 20),  # audio + 1 s padding, rounded up to 5 s steps
        (24.0, True, 25),
        (29.5, True, 30),  # never beyond Whisper's window
        (0.5, False, 5),  # partials: 5 s minimum
        (4.5, False, 10),
    ],
)
def test_window_lengths(audio_s: float, final: bool, window_s: int) -> None:
    policy = WindowPolicy()
    assert policy.window_samples(int(audio_s * RATE), final=final) == window_s * RATE


def test_full_window_policy_is_always_30_s() -> None:
    policy = WindowPolicy(final_min_s=30, partial_min_s=30)
    assert policy.window_samples(RATE, final=True) == WINDOW_SAMPLES
    assert policy.window_samples(RATE, final=False) == WINDOW_SAMPLES


@pytest.mark.parametrize(
    "text",
    [
        "5 5 5 5 5 5 5 5",
        "Seven of clubs. Seven of clubs. Seven of clubs.",
        "on the same day on the same day",
        "thank you thank you thank you",
    ],
)
def test_loops_are_found(text: str) -> None:
    assert repeats_itself(text)


@pytest.mark.parametrize(
    "text",
    [
        "Five, five.",
        "no no no",  # a word three times can be speech
        "He was not an ill-disposed young man.",
        "that that is is not the same",
        "",
    ],
)
def test_speech_is_not_a_loop(text: str) -> None:
    assert not repeats_itself(text)


# -- the guard: one rule set for the short-window pass and the full-window redo -----------


def verdict(
    text: str = "He was not an ill-disposed young man.",
    *,
    tokens: int = 12,
    avg_logprob: float = -0.3,
    no_speech_prob: float = 0.01,
    token_cap: int | None = None,
) -> Verdict:
    return judge(
        text,
        tokens=tokens,
        avg_logprob=avg_logprob,
        no_speech_prob=no_speech_prob,
        token_cap=token_cap,
    )


def test_clean_speech_is_kept() -> None:
    v = verdict()
    assert v is Verdict.KEEP and not v.dropped and not v.redo_on_full_window


def test_silence_is_dropped_and_never_redone() -> None:
    v = verdict(no_speech_prob=0.9, avg_logprob=-1.5)
    assert v is Verdict.SILENT and v.dropped and not v.redo_on_full_window
    # Whisper's rule: a likely no-speech window with a confident decode is still speech.
    assert verdict(no_speech_prob=0.9, avg_logprob=-0.5) is Verdict.KEEP


@pytest.mark.parametrize(
    ("text", "tokens", "cap"),
    [
        ("thank you thank you thank you", 6, None),  # a loop in the words
        ("la-" * 40 + "la", 80, None),  # one "word": only the compression ratio sees it
        ("and then and so we went on and", 40, 40),  # the pass hit its token cap
    ],
)
def test_loops_are_dropped_and_a_final_redone(text: str, tokens: int, cap: int | None) -> None:
    v = verdict(text, tokens=tokens, token_cap=cap)
    assert v is Verdict.LOOPED and v.dropped and v.redo_on_full_window


def test_the_token_cap_counts_only_where_there_is_one() -> None:
    text = "and then and so we went on and"
    assert verdict(text, tokens=39, token_cap=40) is Verdict.KEEP
    assert verdict(text, tokens=400, token_cap=None) is Verdict.KEEP  # full window: no cap


def test_an_unsure_pass_is_kept_but_a_final_is_redone() -> None:
    v = verdict(avg_logprob=-1.2)
    assert v is Verdict.UNSURE and not v.dropped and v.redo_on_full_window


def test_no_token_is_nothing_to_keep_or_redo() -> None:
    v = verdict("", tokens=0, avg_logprob=0.0)
    assert v is Verdict.EMPTY and v.dropped and not v.redo_on_full_window


def test_silence_outranks_a_loop() -> None:
    # A looped decode of silence is silence: dropped without the costly 30 s redo.
    v = verdict("you you you you", tokens=4, no_speech_prob=0.8, avg_logprob=-1.4)
    assert v is Verdict.SILENT


def test_the_full_window_pass_is_judged_as_offline_whisper_judges_it() -> None:
    """A phrase said twice is a loop on a short window (the final is redone), but the
    offline-style 30 s pass keeps it; Whisper's own compression check still applies."""
    said_twice = "I don't know, I don't know what to say."
    assert verdict(said_twice) is Verdict.LOOPED
    assert (
        judge(said_twice, tokens=12, avg_logprob=-0.3, no_speech_prob=0.01, full_window=True)
        is Verdict.KEEP
    )
    babble = "la-" * 40 + "la"
    assert (
        judge(babble, tokens=80, avg_logprob=-0.3, no_speech_prob=0.01, full_window=True)
        is Verdict.LOOPED
    )
