"""End to end: the real server, the real model, real recordings, over a real WebSocket."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.audio import (
    Clip,
    join,
    offline_texts,
    pcm16,
    silence,
    sox_resample,
    sox_synth,
    wer,
)
from tests.support.client import LEGACY, Pace, chunks, play
from tests.support.server import Server

pytestmark = pytest.mark.e2e

Q = "model=pulse&language=en&sample_rate=16000&encoding=linear16"
CLOSE = {"type": "close_stream"}
FINALIZE = {"type": "finalize"}


def _turns(clips: list[Clip], gap: float = 1.5) -> tuple[bytes, str]:
    parts = []
    for clip in clips:
        parts += [clip.audio, silence(gap)]
    return pcm16(join(*parts)), " ".join(c.text for c in clips)


def _assert_terminal(got, expect_code: int = 1000) -> None:
    transcriptions = got.of_type("transcription")
    assert transcriptions, "no transcription message at all"
    last = transcriptions[-1]
    assert last["is_final"] and last["is_last"], last
    assert sum(m["is_last"] for m in transcriptions) == 1
    assert got.close_code == expect_code


def test_single_shot_burst_matches_reference(server: Server, clips: list[Clip]) -> None:
    """The seed's single-shot example: whole buffer in 4096-byte frames, then close_stream."""
    pcm, reference = _turns(clips[:3])
    got = play(server, Q + "&word_timestamps=true", [*chunks(pcm, 4096), CLOSE])
    _assert_terminal(got)
    finals = [m for m in got.finals if m["transcript"]]
    assert len(finals) == 3, [m["transcript"] for m in got.finals]  # one per turn (eou)
    assert wer(reference, got.final_text) <= 0.12, got.final_text
    for message in got.of_type("transcription"):
        for field in (
            "type",
            "status",
            "session_id",
            "transcript",
            "transcription",
            "is_final",
            "is_last",
            "from_finalize",
            "language",
            "words",
        ):
            assert field in message, field
        assert message["transcript"] == message["transcription"]
        assert message["status"] == "success"
        assert message["language"] == "en"
    assert len({m["session_id"] for m in got.messages}) == 1
    duration = len(pcm) / 32000
    previous_end = 0.0
    for message in finals:
        words = message["words"]
        assert [w["word"] for w in words], message
        # Words cover the transcript exactly (Whisper may split "ill-disposed" in two words).
        assert "".join(w["word"] for w in words) == message["transcript"].replace(" ", "")
        for w in words:
            assert 0.0 <= w["start"] <= w["end"] <= duration
            assert 0.0 <= w["confidence"] <= 1.0
            assert w["start"] >= previous_end - 0.05  # monotonic across the session
            previous_end = w["end"]
    # Word times are connection-relative: the second turn starts after the first clip + gap.
    second_start = finals[1]["words"][0]["start"]
    assert clips[0].audio.size / 16000 < second_start < clips[0].audio.size / 16000 + 1.5 + 0.6


def test_realtime_pace_gives_partials_then_final(server: Server, clips: list[Clip]) -> None:
    clip = clips[0]
    pcm = pcm16(join(clip.audio, silence(1.2)))
    got = play(server, Q, [*chunks(pcm, 1280), CLOSE], pace=Pace(32000, 1.0))
    _assert_terminal(got)
    partials = got.partials
    assert len(partials) >= 2, "expected partial transcripts while speaking"
    first_final = got.messages.index(got.finals[0])
    assert got.messages.index(partials[0]) < first_final
    assert all(not m["is_last"] and not m["from_finalize"] for m in partials)
    assert clip.matches(got.finals[0]["transcript"], 0.1)
    # The final came from silence (eou), before close_stream was even sent.
    assert not got.finals[0]["is_last"]
    assert "words" not in got.finals[0]  # word_timestamps defaults to false on stt/live


def test_finalize_per_turn_keeps_socket_open(server: Server, clips: list[Clip]) -> None:
    """The seed's multi-turn voice agent: finalize per turn, one close_stream at the end."""
    a, b = clips[1], clips[4]
    steps = [
        *chunks(pcm16(a.audio), 3200),
        FINALIZE,
        2.0,
        *chunks(pcm16(b.audio), 3200),
        FINALIZE,
        2.0,
        FINALIZE,  # nothing said since: still exactly one (empty) final
        CLOSE,
    ]
    got = play(server, Q + "&eou_timeout_ms=10000", steps)
    _assert_terminal(got)
    finalized = [m for m in got.finals if m["from_finalize"]]
    assert len(finalized) == 3, [(m["transcript"], m["from_finalize"]) for m in got.finals]
    assert a.matches(finalized[0]["transcript"], 0.15)
    assert b.matches(finalized[1]["transcript"], 0.15)
    assert finalized[2]["transcript"] == ""
    assert all(not m["is_last"] for m in finalized)
    assert len(got.finals) == 4  # three finalize finals + the terminal one


def test_legacy_path_end_alias_and_word_timestamps_default(
    server: Server, clips: list[Clip]
) -> None:
    clip = clips[2]
    got = play(
        server,
        "language=en&sample_rate=16000&encoding=linear16",
        [*chunks(pcm16(clip.audio), 3200), {"type": "end"}],
        path=LEGACY,
    )
    _assert_terminal(got)
    assert clip.matches(got.final_text, 0.1)
    assert all("words" in m for m in got.finals)  # word_timestamps defaults to true here


@pytest.mark.parametrize("rate", [8000, 22050, 24000, 44100, 48000])
def test_every_sample_rate(server: Server, clips: list[Clip], rate: int, tmp_path: Path) -> None:
    clip = clips[0]
    audio = sox_resample(join(clip.audio, silence(1.0)), rate, tmp_path)
    frame = 2 * rate // 50  # 20 ms frames, as a telephony or browser client sends
    got = play(
        server,
        f"model=pulse&language=en&encoding=linear16&sample_rate={rate}&word_timestamps=true",
        [*chunks(pcm16(audio), frame), CLOSE],
    )
    _assert_terminal(got)
    assert clip.matches(got.final_text, 0.12), got.final_text
    last_word = got.finals[0]["words"][-1]
    assert abs(last_word["end"] - clip.audio.size / 16000) < 1.0  # times in real seconds


def test_non_speech_invents_no_words(server: Server, tmp_path: Path) -> None:
    noise = sox_synth(["whitenoise", "vol", "0.05"], 6, tmp_path)
    music = sox_synth(["pluck", "C4", "pluck", "E4", "pluck", "G4", "vol", "0.5"], 6, tmp_path)
    hum = sox_synth(["sine", "220", "vol", "0.3"], 4, tmp_path)
    pcm = pcm16(join(silence(5), noise, music, hum, silence(2)))
    got = play(server, Q + "&vad_events=true", [*chunks(pcm, 3200), CLOSE])
    _assert_terminal(got)
    texts = [m["transcript"] for m in got.of_type("transcription") if m["transcript"]]
    assert texts == [], texts


def test_long_turn_is_split_without_losing_words(server: Server, clips: list[Clip]) -> None:
    """~50 s of speech with only short pauses: longer than the model window."""
    audio = join(*[c.audio for c in clips], *[c.audio for c in clips])
    reference = " ".join([c.text for c in clips] * 2)
    got = play(
        server,
        Q + "&eou_timeout_ms=3000&full_transcript=true",
        [*chunks(pcm16(audio), 8000), CLOSE],
    )
    _assert_terminal(got)
    spoken = [m for m in got.finals if m["transcript"]]
    assert len(spoken) >= 2
    assert wer(reference, got.final_text) <= 0.15, got.final_text
    assert got.finals[-1]["full_transcript"] == got.final_text


def test_vad_events_and_full_transcript(server: Server, clips: list[Clip]) -> None:
    pcm, _ = _turns(clips[3:5], gap=1.5)
    got = play(server, Q + "&vad_events=true&full_transcript=true", [*chunks(pcm, 3200), CLOSE])
    _assert_terminal(got)
    started, ended = got.of_type("speech_started"), got.of_type("speech_ended")
    assert len(started) >= 2 and len(ended) >= 2
    assert started[0]["timestamp"] < ended[0]["timestamp"] < started[-1]["timestamp"]
    assert 0.0 <= started[0]["timestamp"] < 1.0
    finals = [m for m in got.finals if m["transcript"]]
    assert finals[-1]["full_transcript"].startswith(finals[0]["transcript"])


def test_malformed_text_frames_get_errors_and_session_continues(
    server: Server, clips: list[Clip]
) -> None:
    """Text that is not a message is an `error`; a message of a type the server does not
    know is only a `warning` (frameworks end the session on any error, issue 16)."""
    clip = clips[4]
    steps = [
        "hello",
        "[1, 2]",
        {"type": "pause"},
        {"no": "type"},
        *chunks(pcm16(clip.audio), 3200),
        CLOSE,
    ]
    got = play(server, Q, steps)
    _assert_terminal(got)
    errors, warnings = got.of_type("error"), got.of_type("warning")
    assert len(errors) == 3 and len(warnings) == 1
    for e in [*errors, *warnings]:
        assert e["status"] in ("error", "warning")
        assert "finalize" in e["message"] and "close_stream" in e["message"]
    assert warnings[0]["warning"] == "unknown_message" and "error" not in warnings[0]
    assert "'pause'" in warnings[0]["message"]
    assert clip.matches(got.final_text, 0.1)


def test_speech_after_finalize_on_live_and_pacing_does_not_matter(
    server: Server, clips: list[Clip]
) -> None:
    """The same audio gives the same finals sent in one burst or at 4x real time."""
    pcm, reference = _turns(clips[:2])
    burst = play(server, Q, [pcm, CLOSE])
    paced = play(server, Q, [*chunks(pcm, 3200), CLOSE], pace=Pace(32000, 4.0))
    for got in (burst, paced):
        _assert_terminal(got)
        assert wer(reference, got.final_text) <= 0.12, got.final_text
    assert len([m for m in burst.finals if m["transcript"]]) == 2


def test_streaming_wer_close_to_offline_faster_whisper(server: Server, clips: list[Clip]) -> None:
    """Finals are as good as offline faster-whisper on the same model and audio."""
    reference = " ".join(c.text for c in clips)
    offline = " ".join(offline_texts([c.audio for c in clips]))
    pcm, _ = _turns(clips)
    got = play(server, Q, [*chunks(pcm, 3200), CLOSE])
    streaming_wer, offline_wer = wer(reference, got.final_text), wer(reference, offline)
    assert streaming_wer <= max(offline_wer * 1.1, offline_wer + 0.02), (
        streaming_wer,
        offline_wer,
        got.final_text,
        offline,
    )


def test_close_without_audio_still_ends_with_is_last(server: Server) -> None:
    got = play(server, "language=en", [CLOSE], path=LEGACY)
    _assert_terminal(got)
    assert len(got.finals) == 1 and got.finals[0]["transcript"] == ""


def _turn_ends(server: Server, clips: list[Clip], query: str) -> list[float]:
    """Play `clips` as turns in real time, a keepalive and a message of an unknown type
    between them (as framework clients send), and check what LiveKit's plugin needs: one
    speech_started/speech_ended pair per turn, no text outside a turn, and each turn's
    speech_final final right before its speech_ended. Returns, per turn, how long after the
    end of its speech (sent in real time) the turn's final arrived."""
    steps: list = []
    for clip in clips:
        steps += [*chunks(pcm16(join(clip.audio, silence(1.5))), 3200)]
        steps += [{"type": "keepalive"}, {"type": "a_future_message", "x": 1}]
    got = play(server, query, [*steps, CLOSE], pace=Pace(32_000))
    _assert_terminal(got)
    assert got.of_type("error") == [], got.of_type("error")
    assert len(got.of_type("pong")) == len(clips)
    assert len(got.of_type("warning")) == len(clips)
    latencies = []
    open_turn = False
    for i, message in enumerate(got.messages):
        kind = message["type"]
        if kind in ("speech_started", "speech_ended"):
            assert open_turn is (kind == "speech_ended"), got.messages[: i + 1]
            open_turn = not open_turn
            if kind == "speech_ended":
                final = got.messages[i - 1]
                assert final["type"] == "transcription" and final["is_final"], final
                assert final["speech_final"] is True and not final["is_last"]
                latencies.append(got.arrival[i - 1] - message["timestamp"])
        elif kind == "transcription" and message["transcript"] and not message["is_last"]:
            assert open_turn, ("text outside a turn", message)
    assert len(latencies) == len(clips)
    reference = " ".join(c.text for c in clips)
    assert wer(reference, got.final_text) <= 0.15, got.final_text
    return latencies


def test_turns_end_with_speech_final_before_speech_ended_and_sooner_with_endpointing(
    server: Server, clips: list[Clip]
) -> None:
    """LiveKit's defaults (vad_events, endpointing, endpointing_timeout=300) against eou
    alone (800 ms): the same order, and the turn's final comes sooner with endpointing.
    (Not 500 ms sooner: with 300 ms the final waits for the decode of the speculative
    pass started 160 ms into the pause, which 800 ms of silence hides.)"""
    turns = [clips[1], clips[4], clips[2]]
    fast = _turn_ends(
        server, turns, Q + "&vad_events=true&endpointing=true&endpointing_timeout=300"
    )
    slow = _turn_ends(server, turns, Q + "&vad_events=true")
    fast_median, slow_median = sorted(fast)[1], sorted(slow)[1]
    print(f"turn end after speech: endpointing 300 {fast}, eou 800 {slow}")
    assert fast_median < slow_median, (fast, slow)
