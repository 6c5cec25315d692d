"""`tests.support.soak`: the accounting of finals owed, on made-up message sequences,
and the bad frames it sends (checked against the server's real decoders)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pulse_stt.audio.decode import AudioDecodeError
from pulse_stt.audio.opus import RawOpusDecoder
from tests.support.soak import (
    Arrival,
    ConnectionReport,
    ResourceSample,
    SoakOptions,
    SoakReport,
    TurnRecord,
    format_report,
    invalid_opus_packet,
    opus_packets,
    score_connection,
)


def final(
    words: list[tuple[str, float]],
    *,
    from_finalize: bool = False,
    is_last: bool = False,
    at: float = 0.0,
) -> Arrival:
    return Arrival(
        at,
        {
            "type": "transcription",
            "is_final": True,
            "from_finalize": from_finalize,
            "is_last": is_last,
            "transcript": " ".join(w for w, _ in words),
            "words": [{"word": w, "start": s, "end": s + 0.3} for w, s in words],
        },
    )


def partial(words: list[tuple[str, float]]) -> Arrival:
    arrival = final(words)
    arrival.message["is_final"] = False
    return arrival


def error(kind: str) -> Arrival:
    return Arrival(0.0, {"type": "error", "error": kind, "message": "..."})


def turn(behaviour: Any, start: float, end: float, bad: Any = None) -> TurnRecord:
    return TurnRecord(behaviour, start, end, "reference text", bad, sent_at=0.0)


def score(
    turns: list[TurnRecord],
    arrivals: list[Arrival],
    *,
    finalizes: int,
    expect_last: bool = True,
    bad_frames: dict[str, int] | None = None,
    ended: Any = "closed",
    close_code: int | None = 1000,
) -> ConnectionReport:
    report = ConnectionReport(0, "linear16", "/waves/v1/stt/live")
    report.ended, report.close_code = ended, close_code
    report.bad_frames.update(bad_frames or {})
    score_connection(report, turns, arrivals, [0.0] * finalizes, expect_last=expect_last)
    return report


# A connection: a finalize turn (0-5 s), an eou turn (6-10 s), then close_stream (11-14 s).
TURNS = [turn("finalize", 0.0, 5.0), turn("eou", 6.0, 10.0), turn("close", 11.0, 14.0)]
CLEAN = [
    partial([("hello", 0.5)]),
    final([("hello", 0.5), ("there", 1.0)], from_finalize=True),
    final([("second", 6.5)]),
    final([("third", 11.2)], is_last=True),
]


def test_a_clean_connection_owes_nothing() -> None:
    report = score(TURNS, CLEAN, finalizes=1)
    assert (report.lost, report.duplicated, report.unheard) == (0, 0, 0)
    assert report.unexpected == []
    assert report.finals == 3
    assert [t.heard for t in report.turns] == ["hello there", "second", "third"]


def test_a_missing_finalize_final_is_lost() -> None:
    arrivals = [CLEAN[0], CLEAN[2], CLEAN[3]]
    assert score(TURNS, arrivals, finalizes=1).lost == 1


def test_a_missing_is_last_is_lost_and_a_second_one_duplicated() -> None:
    assert score(TURNS, CLEAN[:3], finalizes=1).lost == 1
    twice = [*CLEAN[:3], final([], is_last=True), final([], is_last=True)]
    report = score(TURNS, twice, finalizes=1)
    assert report.duplicated == 1
    assert report.unheard == 1  # and the close turn's words never came


def test_an_extra_from_finalize_final_is_duplicated() -> None:
    arrivals = [*CLEAN[:2], final([], from_finalize=True), *CLEAN[2:]]
    assert score(TURNS, arrivals, finalizes=1).duplicated == 1


def test_a_repeated_final_is_duplicated_even_when_counts_match() -> None:
    # The eou final delivered twice: the counts of from_finalize / is_last are right.
    arrivals = [*CLEAN[:3], final([("second", 6.5)]), CLEAN[3]]
    assert score(TURNS, arrivals, finalizes=1).duplicated == 1


def test_an_eou_turn_covered_only_by_a_later_finalize_lost_its_final() -> None:
    arrivals = [
        CLEAN[1],
        final([("second", 6.5), ("third", 11.2)], is_last=True),
    ]
    report = score(TURNS, arrivals, finalizes=1)
    assert report.lost == 1


def test_a_finalize_final_without_the_turns_words_is_unheard() -> None:
    arrivals = [final([], from_finalize=True), CLEAN[2], CLEAN[3]]
    report = score(TURNS, arrivals, finalizes=1)
    assert (report.lost, report.unheard) == (0, 1)


def test_dropped_turns_owe_nothing() -> None:
    turns = [turn("finalize", 0.0, 5.0), turn("drop", 6.0, 8.0)]
    report = score(turns, CLEAN[:2], finalizes=1, expect_last=False, ended="dropped")
    assert (report.lost, report.duplicated, report.unheard, report.unexpected) == (0, 0, 0, [])


def test_errors_must_match_the_bad_frames_sent() -> None:
    asked = {"text": 2, "opus": 1}
    arrivals = [error("bad_message"), error("bad_audio"), error("bad_message"), *CLEAN]
    assert score(TURNS, arrivals, finalizes=1, bad_frames=asked).unexpected == []
    missing = score(TURNS, [error("bad_message"), *CLEAN], finalizes=1, bad_frames=asked)
    assert len(missing.unexpected) == 2  # one bad_message and the bad_audio never came
    unasked = score(TURNS, [error("engine_error"), *CLEAN], finalizes=1)
    assert unasked.unexpected == ["1 unasked error(s) 'engine_error'"]


def test_server_side_closes_and_late_messages_are_unexpected() -> None:
    report = score(
        TURNS, CLEAN[:2], finalizes=1, expect_last=False, ended="server_closed", close_code=1011
    )
    assert "the server closed the connection with 1011" in report.unexpected
    late = score(TURNS, [*CLEAN, error("bad_message")], finalizes=1, bad_frames={"text": 1})
    assert "a message arrived after is_last" in late.unexpected
    assert (
        "closed with 1006 after close_stream, not 1000"
        in score(TURNS, CLEAN, finalizes=1, close_code=1006).unexpected
    )


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32))
def test_invalid_opus_packets_are_refused_by_the_real_decoder(seed: int) -> None:
    with pytest.raises(AudioDecodeError):
        RawOpusDecoder().decode(invalid_opus_packet(random.Random(seed)))


def test_opus_packets_decode_to_the_clips_length() -> None:
    audio = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    packets = opus_packets(audio)
    decoder = RawOpusDecoder()
    decoded = np.concatenate([decoder.decode(p) for p in packets])
    assert len(packets) == 50 + 1  # 1 s in 20 ms packets, plus the encoder's delay
    assert abs(decoded.size / 48000 - 1.0) <= 0.03
    assert np.sqrt(np.mean(decoded**2)) > 0.1  # the tone, not silence


def test_the_report_ends_with_the_lost_finals_line() -> None:
    lossy = score(TURNS, CLEAN[1:3], finalizes=1)
    samples = [
        ResourceSample(t, 400 * 2**20 + t * 2**20, t * 0.5, 2.0, 1, 3, 2, 0) for t in (0, 30, 60)
    ]
    report = SoakReport(SoakOptions(), 61.0, [lossy], samples)
    text = format_report(report, warmup_s=20)
    assert text.splitlines()[-1] == "LOST FINALS: 1"
    assert "| 30 | 430 | 0.50 | 2 |" in text
    assert report.rss_after_warmup(20) == (430 * 2**20, 460 * 2**20, 460 * 2**20)
    assert report.refusals == Counter()
