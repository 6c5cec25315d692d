"""Window sizes and loop detection of `pulse_stt.engine.transcriber` (no model needed)."""

from __future__ import annotations

import pytest

from pulse_stt.engine.transcriber import WINDOW_SAMPLES, WindowPolicy, repeats_itself

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
