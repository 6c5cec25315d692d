"""The accounting of a soak connection: which finals were owed, and which arrived.

Finals are matched to turns by their words' times (seconds from the connection's first
audio byte), so the accounting does not depend on when they arrive:

- lost: a finalize without its `from_finalize` final, a `close_stream` without `is_last`,
  an `eou` turn with no final holding its words;
- duplicated: more `from_finalize` / `is_last` finals than asked for, or a final that
  repeats a word (same word, same start) an earlier final already delivered;
- unheard: a finished turn of real speech whose words are in no final at all;
- unexpected errors: an `error` message no bad frame asked for (or more than asked for),
  a bad frame that got no `error`, a server message that is not JSON, and a connection
  the server closed with anything but 1000 after `close_stream`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.support.loadgen import normalize_word
from tests.support.soak.inputs import BadFrame, Behaviour

_TURN_SLACK_S = 0.3  # a word belongs to a turn if it starts within its clip ± this
_SAME_WORD_S = 0.02  # two finals with the same word starting this close: a duplicate


@dataclass
class TurnRecord:
    behaviour: Behaviour
    start_s: float  # where the clip starts on the connection's audio timeline
    end_s: float  # where what was sent of the clip ends
    reference: str | None
    bad_frame: BadFrame | None = None
    sent_at: float = 0.0  # wall time (monotonic) when the clip's last frame went out


@dataclass
class Arrival:
    at: float  # monotonic wall time
    message: dict[str, Any]


@dataclass
class TurnOutcome:
    behaviour: Behaviour
    reference: str | None  # None for a turn cut by hanging up (nothing is owed for it)
    heard: str  # words of all finals that fall in the turn, in time order
    final_delay_s: float | None  # clip's last frame sent → first final holding its words


@dataclass
class ConnectionReport:
    stream: int
    encoding: str
    path: str
    refused: str | None = None  # "http 503", "close 1013", ... (then nothing else applies)
    turns: list[TurnOutcome] = field(default_factory=list)
    finalizes: int = 0
    close_sent: bool = False
    ended: Literal["closed", "dropped", "dropped_with_close", "server_closed"] = "closed"
    close_code: int | None = None
    audio_s: float = 0.0
    finals: int = 0
    lost: int = 0
    duplicated: int = 0
    unheard: int = 0
    bad_frames: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # `error` field of error messages
    unexpected: list[str] = field(default_factory=list)
    finalize_rtt: list[float] = field(default_factory=list)
    retry_after_s: float = 1.0


def final_arrivals(arrivals: Sequence[Arrival]) -> list[Arrival]:
    return [
        a
        for a in arrivals
        if a.message.get("type") == "transcription" and a.message.get("is_final")
    ]


def _word_starts(message: dict[str, Any]) -> list[float]:
    return [float(w.get("start", -1.0)) for w in message.get("words") or ()]


def _in_turn(start: float, turn: TurnRecord) -> bool:
    return turn.start_s - _TURN_SLACK_S <= start <= turn.end_s + _TURN_SLACK_S


def eou_covered(turn: TurnRecord, finals: Sequence[Arrival]) -> Arrival | None:
    """The first automatic final (neither from finalize nor is_last) with words of `turn`."""
    for arrival in finals:
        message = arrival.message
        if message.get("from_finalize") or message.get("is_last"):
            continue
        if any(_in_turn(s, turn) for s in _word_starts(message)):
            return arrival
    return None


def score_connection(
    report: ConnectionReport,
    turns: Sequence[TurnRecord],
    arrivals: Sequence[Arrival],
    finalize_sent_at: Sequence[float],
    *,
    expect_last: bool,
) -> None:
    """Fill `report`'s tallies from what was sent (`turns`, finalize times) and received."""
    finals = final_arrivals(arrivals)
    report.finals = len(finals)
    from_finalize = [a for a in finals if a.message.get("from_finalize")]
    last = [a for a in finals if a.message.get("is_last")]
    owed = len(finalize_sent_at)
    report.lost += max(0, owed - len(from_finalize))
    report.duplicated += max(0, len(from_finalize) - owed)
    report.finalize_rtt = [
        a.at - sent for sent, a in zip(finalize_sent_at, from_finalize, strict=False)
    ]
    report.lost += max(0, int(expect_last) - len(last))
    report.duplicated += max(0, len(last) - int(expect_last))
    if last and arrivals[-1] is not last[0]:
        report.unexpected.append("a message arrived after is_last")
    # A word delivered twice (same word, same start) means a final was repeated.
    seen: list[tuple[str, float]] = []
    for arrival in finals:
        words = [
            (normalize_word(w.get("word", "")), float(w.get("start", -1.0)))
            for w in arrival.message.get("words") or ()
        ]
        if any(
            word and word == other and abs(start - other_start) <= _SAME_WORD_S
            for word, start in words
            for other, other_start in seen
        ):
            report.duplicated += 1
        seen += words
    for turn in turns:
        if turn.behaviour in ("drop", "drop_with_close"):
            report.turns.append(TurnOutcome(turn.behaviour, None, "", None))  # nothing owed
            continue
        holding = [a for a in finals if any(_in_turn(s, turn) for s in _word_starts(a.message))]
        if turn.behaviour == "eou" and eou_covered(turn, finals) is None:
            report.lost += 1
        elif not holding:
            report.unheard += 1
        words = sorted(
            (float(w.get("start", 0.0)), str(w.get("word", "")))
            for a in holding
            for w in a.message.get("words") or ()
            if _in_turn(float(w.get("start", -1.0)), turn)
        )
        report.turns.append(
            TurnOutcome(
                turn.behaviour,
                turn.reference,
                " ".join(w for _, w in words),
                holding[0].at - turn.sent_at if holding else None,
            )
        )
    report.errors = Counter(
        str(a.message.get("error") or "unknown")
        for a in arrivals
        if a.message.get("type") == "error"
    )
    asked = Counter(
        {"bad_message": report.bad_frames["text"], "bad_audio": report.bad_frames["opus"]}
    )
    for kind, count in report.errors.items():
        if count > asked[kind]:
            report.unexpected.append(f"{count - asked[kind]} unasked error(s) {kind!r}")
    for kind, count in asked.items():
        if report.errors[kind] < count:
            report.unexpected.append(f"{count - report.errors[kind]} bad frame(s) got no {kind!r}")
    if report.ended == "server_closed" and not report.refused:
        report.unexpected.append(f"the server closed the connection with {report.close_code}")
    elif report.ended == "closed" and report.close_code != 1000:
        report.unexpected.append(f"closed with {report.close_code} after close_stream, not 1000")
