"""diarize=true end to end: real voices, real socket, real model."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.support.audio import join, pcm16, silence, write_wav
from tests.support.client import Pace, Received, chunks, play
from tests.support.scoring import Segment, word_accuracy
from tests.support.server import Server, running_server
from tests.support.speakers import (
    RATE,
    Recording,
    conversation,
    natural_recordings,
    trim_silence,
    voices,
)

QUERY = (
    "model=pulse&encoding=linear16&sample_rate=16000&word_timestamps=true&sentence_timestamps=true"
)


@pytest.fixture(scope="module")
def eval_voices() -> dict[str, list[np.ndarray]]:
    return voices("eval")


def _words(finals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [w for m in finals for w in m.get("words", [])]


def _stream(
    server: Server, audio: np.ndarray, *, speed: float | None = 4.0, extra: str = ""
) -> Received:
    steps = [*chunks(pcm16(join(audio, silence(2.0))), 640), {"type": "close_stream"}]
    return play(server, QUERY + "&diarize=true" + extra, steps, pace=Pace(2 * RATE, speed))


def _check_labels(rec: Recording, words: list[dict[str, Any]], *, min_accuracy: float) -> None:
    assert words, "no words came back"
    for w in words:
        assert isinstance(w["speaker"], int)
        assert 0.0 <= w["speaker_confidence"] <= 1.0
    reference = [Segment(t.start, t.end, t.speaker) for t in rec.turns]
    hyp = [Segment(w["start"], w["end"], w["speaker"]) for w in words]
    accuracy = word_accuracy(reference, hyp)
    labels = Counter(w["speaker"] for w in words)
    assert accuracy >= min_accuracy, (accuracy, labels)
    # Every person gets a label of their own; numbering starts at 0 in order of appearance.
    main_labels = {label for label, n in labels.items() if n >= 3}
    assert len(main_labels) == len(rec.speakers), labels
    assert words[0]["speaker"] == 0
    assert sorted(labels) == list(range(len(labels)))


def test_two_speakers_live_get_distinct_stable_labels(server: Server, eval_voices) -> None:
    rec = conversation(eval_voices, ["librivox", "pocketsphinx"], seed=1, turns=8)
    got = _stream(server, rec.audio)
    assert got.close_code == 1000
    _check_labels(rec, _words(got.finals), min_accuracy=0.9)
    # utterances never mix speakers, and say whose they are
    for message in got.finals:
        for utterance in message["utterances"]:
            inside = [
                w["speaker"]
                for w in message["words"]
                if utterance["start"] <= w["start"] and w["end"] <= utterance["end"]
            ]
            assert set(inside) == {utterance["speaker"]}
    # partials carry (provisional) labels too
    assert any("speaker" in w for m in got.partials for w in m.get("words", []))


def test_three_speakers_live(server: Server, eval_voices) -> None:
    rec = conversation(eval_voices, ["librivox", "pocketsphinx", "MEE009"], seed=2, turns=9)
    got = _stream(server, rec.audio)
    _check_labels(rec, _words(got.finals), min_accuracy=0.8)


def test_speaker_change_inside_one_turn(server: Server, eval_voices) -> None:
    """Two people with a 0.4 s gap (well under eou_timeout_ms): one final, two speakers."""
    a = trim_silence(eval_voices["librivox"][0])
    b = join(*(trim_silence(c) for c in eval_voices["pocketsphinx"][3:5]))
    audio = join(silence(0.5), a, silence(0.4), b)
    got = _stream(server, audio, extra="&eou_timeout_ms=1500")
    words = _words(got.finals)
    mixed = [m for m in got.finals if len({w["speaker"] for w in m["words"]}) == 2]
    assert mixed, [(m["transcript"], [w["speaker"] for w in m["words"]]) for m in got.finals]
    change = 0.5 + a.size / RATE + 0.2
    early = Counter(w["speaker"] for w in words if w["end"] < change - 0.5)
    late = Counter(w["speaker"] for w in words if w["start"] > change + 0.5)
    assert early.most_common(1)[0][0] == 0 and late.most_common(1)[0][0] == 1, (early, late)


def test_one_speaker_long_session_stays_speaker_zero(server: Server, eval_voices) -> None:
    clips = eval_voices["librivox"]
    steps: list[Any] = []
    for clip in clips:  # five turns, a finalize after each, about a minute in all
        steps += chunks(pcm16(join(clip, silence(0.3))), 640)
        steps.append({"type": "finalize"})
        steps += chunks(pcm16(silence(1.0)), 640)
    steps.append({"type": "close_stream"})
    got = play(server, QUERY + "&diarize=true", steps, pace=Pace(2 * RATE, 4.0))
    words = _words(got.finals)
    assert len(words) > 60
    assert {w["speaker"] for w in words} == {0}
    assert sum(m["from_finalize"] for m in got.finals) == len(clips)


def test_rest_with_diarization(server: Server, eval_voices, tmp_path: Path) -> None:
    rec = conversation(eval_voices, ["speaker90", "librivox", "pocketsphinx"], seed=3, turns=9)
    path = tmp_path / "conversation.wav"
    write_wav(rec.audio, RATE, path)
    response = httpx.post(
        f"{server.http}/waves/v1/stt/?model=pulse&word_timestamps=true&diarize=true",
        content=path.read_bytes(),
        headers={**server.headers(), "Content-Type": "audio/wav"},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    _check_labels(rec, body["words"], min_accuracy=0.85)
    assert all(isinstance(u["speaker"], int) for u in body["utterances"])


def test_recorded_call_gets_both_people_live_and_by_rest(server: Server, tmp_path: Path) -> None:
    """pyannote's sample: a real two-person call, short turns back and forth with no pause
    long enough to end a turn, two voices that sound alike on one line."""
    call = natural_recordings("eval")[0]
    got = _stream(server, call.audio)
    _check_labels(call, _words(got.finals), min_accuracy=0.85)
    path = tmp_path / "call.wav"
    write_wav(call.audio, RATE, path)
    response = httpx.post(
        f"{server.http}/waves/v1/stt/?model=pulse&word_timestamps=true&diarize=true",
        content=path.read_bytes(),
        headers={**server.headers(), "Content-Type": "audio/wav"},
        timeout=300,
    )
    assert response.status_code == 200, response.text
    _check_labels(call, response.json()["words"], min_accuracy=0.85)


def test_diarize_off_adds_nothing(server: Server, eval_voices) -> None:
    rec = conversation(eval_voices, ["librivox", "pocketsphinx"], seed=1, turns=3)
    steps = [*chunks(pcm16(join(rec.audio, silence(1.5))), 640), {"type": "close_stream"}]
    got = play(server, QUERY, steps, pace=Pace(2 * RATE, None))
    words = _words(got.finals)
    assert words and not any("speaker" in w or "speaker_confidence" in w for w in words)
    assert not any("speaker" in u for m in got.finals for u in m["utterances"])


def test_diarize_refused_clearly_without_weights(tmp_path: Path) -> None:
    with running_server(tmp_path, speaker_weights=str(tmp_path / "missing.pt")) as server:
        response = httpx.post(
            f"{server.http}/waves/v1/stt/?model=pulse&diarize=true",
            content=b"RIFF",
            headers=server.headers(),
        )
        assert response.status_code == 400
        body = response.json()
        assert body["param"] == "diarize" and "not available" in body["message"]
        assert "missing.pt" in body["message"]
