"""End to end: the engine's latency machinery keeps transcripts right (real model and audio).

- stable partials: words two passes agreed on are never revised by a later partial of the
  turn, also once a long turn's partials decode only the audio after the committed words;
- speculative finals: a turn ended by `finalize` after a pause gets the same transcript as
  one decoded from scratch;
- batching across sessions: concurrent sessions get their own words, not each other's.
"""

from __future__ import annotations

import asyncio
import re
from itertools import pairwise
from typing import Any

import pytest

from tests.support.audio import Clip, join, pcm16, silence, wer
from tests.support.client import Pace, chunks, play, run_script
from tests.support.server import Server

pytestmark = pytest.mark.e2e

Q = "model=pulse&language=en&sample_rate=16000&encoding=linear16&word_timestamps=true"
CLOSE = {"type": "close_stream"}
FINALIZE = {"type": "finalize"}


def _words(message: dict[str, Any]) -> list[str]:
    return [re.sub(r"[^\w']", "", w["word"].lower()) for w in message.get("words", [])]


def _common_prefix(a: list[str], b: list[str]) -> list[str]:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


def test_agreed_words_are_never_revised_in_a_long_turn(server: Server, clips: list[Clip]) -> None:
    # ~25 s of read speech with only the recordings' own short pauses: one long turn
    # (split at most at the 25 s limit), so later partials decode only the uncommitted tail.
    audio = join(*[c.audio for c in clips])
    reference = " ".join(c.text for c in clips)
    got = play(
        server,
        Q + "&eou_timeout_ms=3000",
        [*chunks(pcm16(audio), 1280), CLOSE],
        pace=Pace(32000, 1.0),
    )
    assert wer(reference, got.final_text) <= 0.1, got.final_text
    by_turn: dict[int, list[list[str]]] = {}
    turn = 0
    for message in got.of_type("transcription"):
        if message["is_final"]:
            turn += 1  # partials after a final belong to the next turn
        else:
            by_turn.setdefault(turn, []).append(_words(message))
    longest = max(by_turn.values(), key=len)
    assert len(longest) >= 10, "expected many partials in a long turn"
    assert max(len(p) for p in longest) >= 20, "the long turn's partials should grow"
    for partials in by_turn.values():
        for i, (before, after) in enumerate(pairwise(partials)):
            agreed = _common_prefix(before, after)
            for later in partials[i + 2 :]:
                assert later[: len(agreed)] == agreed, (agreed, later)


def test_finalize_after_a_pause_equals_a_fresh_decode(server: Server, clips: list[Clip]) -> None:
    """The pause starts a speculative pass that `finalize` reuses; a turn finalized with no
    pause (speech runs up to the finalize) is decoded fresh. Same words either way."""
    clip = clips[0]
    paused = play(
        server,
        Q + "&eou_timeout_ms=5000",
        [*chunks(pcm16(join(clip.audio, silence(0.6))), 1280), FINALIZE, CLOSE],
        pace=Pace(32000, 1.0),
    )
    fresh = play(
        server,
        Q + "&eou_timeout_ms=5000",
        [*chunks(pcm16(clip.audio), 1280), FINALIZE, CLOSE],
        pace=Pace(32000, 4.0),
    )
    [paused_final] = [m for m in paused.finals if m["from_finalize"]]
    [fresh_final] = [m for m in fresh.finals if m["from_finalize"]]
    assert paused_final["transcript"], "the finalize final is empty"
    assert clip.matches(paused_final["transcript"], 0.1)
    assert _words(paused_final) == _words(fresh_final)


def test_concurrent_sessions_batched_together_keep_their_own_words(
    server: Server, clips: list[Clip]
) -> None:
    async def caller(clip: Clip) -> str:
        got = await run_script(
            server,
            Q,
            [*chunks(pcm16(join(clip.audio, silence(0.5))), 1280), FINALIZE, CLOSE],
            pace=Pace(32000, 2.0),
        )
        return got.final_text

    async def all_callers() -> list[str]:
        return await asyncio.gather(*(caller(c) for c in clips))

    texts = asyncio.run(all_callers())
    for clip, text in zip(clips, texts, strict=True):
        assert clip.matches(text, 0.15), (clip.text, text)
