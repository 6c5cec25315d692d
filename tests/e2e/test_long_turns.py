"""End to end: one long turn of continuous reading at real-time pace (stable finals:
speculative passes settle the turn at its pauses, the final decodes only the rest)."""

from __future__ import annotations

import re

import pytest

from tests.support.audio import Clip, join, offline_texts, pcm16, silence, wer
from tests.support.client import Pace, chunks, play
from tests.support.server import Server

pytestmark = pytest.mark.e2e

Q = (
    "model=pulse&language=en&sample_rate=16000&encoding=linear16"
    "&eou_timeout_ms=3000&word_timestamps=true"
)


def _norm(word: str) -> str:
    return re.sub(r"[^\w']", "", word.lower())


def test_a_long_turn_at_real_time_pace_is_as_accurate_as_offline_and_keeps_what_it_showed(
    server: Server, clips: list[Clip]
) -> None:
    """The five LibriVox clips read as one passage with 0.25 s breaths (about 26 s, one
    turn, cut at 25 s), streamed in 100 ms frames at real-time pace."""
    passage = join(*[part for c in clips for part in (c.audio, silence(0.25))])
    reference = " ".join(c.text for c in clips)
    (offline,) = offline_texts([passage])

    pcm = pcm16(join(passage, silence(1.0)))
    got = play(server, Q, [*chunks(pcm, 3200), {"type": "close_stream"}], pace=Pace(32000))
    assert got.finals[-1]["is_last"]
    streaming_wer, offline_wer = wer(reference, got.final_text), wer(reference, offline)
    # No word lost or repeated where the turn was settled and stitched.
    assert streaming_wer <= max(offline_wer * 1.1, offline_wer + 0.03), (
        streaming_wer,
        offline_wer,
        got.final_text,
        offline,
    )
    # The first final (the 25 s cut) begins with the words its partials had settled,
    # verbatim: the longest run it shares with an earlier partial is most of it.
    first = next(m for m in got.finals if m["transcript"])
    final_words = [_norm(w["word"]) for w in first["words"]]
    before = got.messages.index(first)
    shared = 0
    for partial in got.partials:
        if got.messages.index(partial) > before:
            break
        shown = [_norm(w["word"]) for w in partial["words"]]
        run = next(
            (i for i, (a, b) in enumerate(zip(shown, final_words, strict=False)) if a != b),
            min(len(shown), len(final_words)),
        )
        shared = max(shared, run)
    assert shared >= 0.6 * len(final_words), (shared, len(final_words), first["transcript"])
