"""Whole-file turns packed into one encoder window (stream/packing.py)."""

from __future__ import annotations

import numpy as np

from pulse_stt.protocol import MODEL_RATE, FinalReason, JobKind
from pulse_stt.stream.packing import PackPolicy, TurnPacker, join_turns
from pulse_stt.stream.session import UtteranceAudio


def turn(n: int, offset: float, seconds: float, value: float = 0.5) -> UtteranceAudio:
    return UtteranceAudio(
        utterance=n,
        offset=offset,
        audio=np.full(round(seconds * MODEL_RATE), value, dtype=np.float32),
        kind=JobKind.FINAL,
        reason=FinalReason.EOU,
    )


def feed(packer: TurnPacker, turns: list[UtteranceAudio]) -> list[UtteranceAudio]:
    packs = [p for t in turns for p in packer.add(t)]
    return packs + packer.close()


def test_short_turns_share_a_window_with_their_pauses_kept() -> None:
    packs = feed(TurnPacker(), [turn(0, 1.0, 3.0, 0.1), turn(1, 4.5, 2.0, 0.2)])
    assert len(packs) == 1
    pack = packs[0]
    assert pack.utterance == 0 and pack.offset == 1.0
    assert pack.audio.size == round(5.5 * MODEL_RATE)  # 3 s, the 0.5 s pause, 2 s
    # the second turn's audio starts where it started in the file (word times stay right)
    start = round(3.5 * MODEL_RATE)
    assert np.all(pack.audio[: 3 * MODEL_RATE] == np.float32(0.1))
    assert np.all(pack.audio[3 * MODEL_RATE : start] == 0)
    assert np.all(pack.audio[start:] == np.float32(0.2))


def test_a_pack_never_outgrows_the_minimum_window() -> None:
    turns = [turn(i, i * 6.0, 5.0) for i in range(5)]  # 5 s turns, 1 s apart
    packs = feed(TurnPacker(PackPolicy(max_audio_s=14.0)), turns)
    assert [p.utterance for p in packs] == [0, 2, 4]
    assert all(p.audio.size <= 14 * MODEL_RATE for p in packs)


def test_a_long_pause_or_a_long_turn_starts_a_new_pack() -> None:
    packs = feed(TurnPacker(), [turn(0, 0.0, 2.0), turn(1, 5.0, 2.0), turn(2, 7.5, 20.0)])
    assert [(p.utterance, p.audio.size / MODEL_RATE) for p in packs] == [
        (0, 2.0),  # 3 s pause: over max_gap_s
        (1, 2.0),  # the next turn alone is longer than a pack
        (2, 20.0),  # kept whole: a turn is never cut
    ]


def test_one_turn_is_passed_through_unchanged() -> None:
    one = turn(3, 2.0, 4.0)
    assert join_turns([one]) is one
    assert feed(TurnPacker(), []) == []
