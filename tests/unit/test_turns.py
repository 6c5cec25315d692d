"""Turn events, endpointing and control messages (issue 16): `LiveStream` without a socket
(the stand-in engine of test_live), the query parameters, the wire JSON, and the runner's
answers to keepalive and unknown messages."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from pulse_stt.api.control import Control, ControlError, UnknownControlError, parse_control
from pulse_stt.api.params import ParamError
from pulse_stt.api.schemas import event_message
from pulse_stt.protocol import MODEL_RATE, FinalReason, TextOptions
from pulse_stt.stream.events import LiveEvent, PongEvent, TranscriptEvent, VadEvent, WarningEvent
from pulse_stt.stream.live import LiveServices, LiveStream
from pulse_stt.text.format import Transcript
from tests.unit.test_live import (
    FRAME_BYTES,
    FakeDecoder,
    feed_frames,
    run,
    stream_params,
    transcripts,
)
from tests.unit.test_stream_runner import FakeSocket, run_session

HI = Transcript("hi", (), (), "en", ("en",))
TURNS = {"vad_events": "true", "endpointing": "true", "endpointing_timeout": "300"}


def _pcm(*parts: np.ndarray) -> bytes:
    return np.concatenate(parts).astype("<i2").tobytes()


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * MODEL_RATE), dtype=np.int16)


@pytest.fixture(scope="module")
def pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=2)


@pytest.fixture(scope="module")
def three_turns(librivox_clips: list[np.ndarray]) -> bytes:
    """Three real turns, 1.5 s of silence after each."""
    return _pcm(*[part for clip in librivox_clips[:3] for part in (clip, _silence(1.5))])


def _check_turns_are_closed_by_their_final(events: list[LiveEvent]) -> int:
    """What LiveKit's plugin needs: speech_started/speech_ended alternate; all text of a
    turn arrives while it is open; the turn's last final (speech_final) comes right before
    its speech_ended. Returns the number of turns."""
    open_turn = False
    turns = 0
    for i, event in enumerate(events):
        if isinstance(event, VadEvent):
            assert open_turn is (event.kind == "speech_ended"), (i, event)
            open_turn = not open_turn
            if event.kind == "speech_ended":
                turns += 1
                before = events[i - 1]
                assert isinstance(before, TranscriptEvent), before
                assert before.is_final and before.speech_final, before
        elif isinstance(event, TranscriptEvent) and event.transcript.text:
            assert open_turn or event.is_last, (i, event)  # no text outside a turn
    return turns


def test_each_turn_ends_with_its_speech_final_then_speech_ended(
    three_turns: bytes, pool: ThreadPoolExecutor
) -> None:
    async def script(live: LiveStream) -> None:
        await feed_frames(live, three_turns)
        await live.close(0.0)

    events, _ = run(stream_params(**TURNS), script, pool)
    assert _check_turns_are_closed_by_their_final(events) == 3
    finals = [t for t in transcripts(events) if t.is_final]
    assert [f.reason for f in finals] == [FinalReason.EOU] * 3 + [FinalReason.CLOSE]
    assert all(f.speech_final for f in finals)
    assert not any(t.speech_final for t in transcripts(events) if not t.is_final)


def test_without_endpointing_the_order_is_the_same(
    three_turns: bytes, pool: ThreadPoolExecutor
) -> None:
    async def script(live: LiveStream) -> None:
        await feed_frames(live, three_turns)
        await live.close(0.0)

    events, _ = run(stream_params(vad_events="true"), script, pool)
    assert _check_turns_are_closed_by_their_final(events) == 3


def test_a_pause_inside_a_turn_is_not_a_turn_end(
    librivox_clips: list[np.ndarray], pool: ThreadPoolExecutor
) -> None:
    """A 0.5 s pause inside a turn, eou 800: one turn, one speech_started/speech_ended."""
    clip = librivox_clips[0]
    third = clip.size // 3
    pcm = _pcm(clip[:third], _silence(0.5), clip[third:], _silence(1.5))

    async def script(live: LiveStream) -> None:
        await feed_frames(live, pcm)
        await live.close(0.0)

    events, _ = run(stream_params(vad_events="true"), script, pool)
    vad = [e.kind for e in events if isinstance(e, VadEvent)]
    assert vad == ["speech_started", "speech_ended"]
    assert _check_turns_are_closed_by_their_final(events) == 1


def test_cuts_inside_a_turn_are_not_speech_final(
    librivox_clips: list[np.ndarray], pool: ThreadPoolExecutor
) -> None:
    """max_words cuts the turn (speech_final false); the turn still ends once, with a
    speech_final final before its speech_ended."""
    pcm = _pcm(librivox_clips[0], _silence(1.5))

    async def script(live: LiveStream) -> None:
        await feed_frames(live, pcm)
        await live.close(0.0)

    events, _ = run(stream_params(max_words="3", **TURNS), script, pool)
    finals = [t for t in transcripts(events) if t.is_final]
    cuts = [f for f in finals if f.reason is FinalReason.MAX_WORDS]
    assert cuts and not any(f.speech_final for f in cuts)
    vad = [e.kind for e in events if isinstance(e, VadEvent)]
    assert vad == ["speech_started", "speech_ended"]
    assert _check_turns_are_closed_by_their_final(events) == 1


def test_finalize_is_speech_final_and_closes_the_vad_turn(
    librivox_clips: list[np.ndarray], pool: ThreadPoolExecutor
) -> None:
    clip = librivox_clips[0]

    async def script(live: LiveStream) -> None:
        await feed_frames(live, _pcm(clip[: clip.size // 2]))
        await live.finalize()
        await feed_frames(live, _pcm(clip[clip.size // 2 :], _silence(1.5)))
        await live.close(0.0)

    events, _ = run(stream_params(**TURNS), script, pool)
    finals = [t for t in transcripts(events) if t.is_final]
    answer = next(f for f in finals if f.from_finalize)
    assert answer.speech_final
    after = events[events.index(answer) + 1]
    assert isinstance(after, VadEvent) and after.kind == "speech_ended"
    assert _check_turns_are_closed_by_their_final(events) == 2


def _turn_end_s(params: dict[str, str], pcm: bytes, pool: ThreadPoolExecutor) -> float:
    """Seconds of audio fed when the first turn's final was cut."""

    async def main() -> float:
        live = LiveStream("s", stream_params(**params), LiveServices(FakeDecoder(), pool))
        for i in range(0, len(pcm), FRAME_BYTES):
            await live.feed(pcm[i : i + FRAME_BYTES], 0.0)
            if live.session.current_utterance > 0:
                return (i + FRAME_BYTES) / 2 / MODEL_RATE
        raise AssertionError("the turn never ended")

    return asyncio.run(main())


def test_endpointing_timeout_ends_the_turn_sooner_than_eou(
    librivox_clips: list[np.ndarray], pool: ThreadPoolExecutor
) -> None:
    pcm = _pcm(librivox_clips[0], _silence(3.0))
    eou = _turn_end_s({}, pcm, pool)
    fast = _turn_end_s({"endpointing": "true", "endpointing_timeout": "300"}, pcm, pool)
    assert eou - fast == pytest.approx(0.5, abs=0.07)  # 800 ms vs 300 ms of silence
    # the shorter of the two ends the turn; endpointing=false ignores endpointing_timeout
    assert _turn_end_s({"endpointing": "true", "endpointing_timeout": "2000"}, pcm, pool) == eou
    assert _turn_end_s({"endpointing_timeout": "300"}, pcm, pool) == eou
    slow_eou = {"eou_timeout_ms": "2000", "endpointing": "true"}  # endpointing_timeout 600
    assert _turn_end_s(slow_eou, pcm, pool) == pytest.approx(eou - 0.2, abs=0.07)


def test_the_speculative_final_is_reused_with_endpointing(
    librivox_clips: list[np.ndarray], pool: ThreadPoolExecutor
) -> None:
    pcm = _pcm(librivox_clips[1], _silence(1.5))

    async def script(live: LiveStream) -> None:
        await feed_frames(live, pcm)
        await live.close(0.0)

    events, decoder = run(stream_params(**TURNS), script, pool)
    (turn_final,) = [t for t in transcripts(events) if t.reason is FinalReason.EOU]
    assert turn_final.transcript.text
    speculative = [j for j in decoder.jobs if j.speculative]
    finals = [j for j in decoder.jobs if j.is_final and not j.speculative]
    assert speculative and finals == []  # the turn's final is its speculation


def test_per_session_vad_settings_reach_the_endpointer(
    librivox_clips: list[np.ndarray], pool: ThreadPoolExecutor
) -> None:
    pcm = _pcm(librivox_clips[0], _silence(1.5))

    async def script(live: LiveStream) -> None:
        await feed_frames(live, pcm)
        await live.close(0.0)

    # A threshold no frame reaches: no speech at all, so no turn and no text.
    events, _ = run(stream_params(vad_events="true", vad_threshold="1"), script, pool)
    assert not [e for e in events if isinstance(e, VadEvent)]
    # A minimum run longer than the clip: likewise.
    events, _ = run(stream_params(vad_events="true", vad_min_speech_ms="10000"), script, pool)
    assert not [e for e in events if isinstance(e, VadEvent)]


# -- parameters ------------------------------------------------------------------------------


def test_turn_parameters_defaults() -> None:
    params = stream_params()
    assert (params.endpointing, params.endpointing_timeout_ms) == (False, 600)
    assert (params.vad_threshold, params.vad_min_speech_ms) == (None, None)
    assert params.turn_end_ms == 800
    assert stream_params(endpointing="true").turn_end_ms == 600
    assert stream_params(endpointing="true", endpointing_timeout="300").turn_end_ms == 300
    assert stream_params(endpointing="true", eou_timeout_ms="400").turn_end_ms == 400
    assert stream_params(vad="true").vad_events  # the alias
    given = stream_params(vad_threshold="0.35", vad_min_speech_ms="150")
    assert (given.vad_threshold, given.vad_min_speech_ms) == (0.35, 150)


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("endpointing", "yes"),
        ("endpointing", "300"),
        ("endpointing_timeout", "5"),
        ("endpointing_timeout", "20000"),
        ("endpointing_timeout", "fast"),
        ("vad_threshold", "1.5"),
        ("vad_threshold", "-0.1"),
        ("vad_threshold", "nan"),
        ("vad_threshold", "high"),
        ("vad_min_speech_ms", "-1"),
        ("vad_min_speech_ms", "0.5"),
    ],
)
def test_bad_turn_parameters_are_400s_naming_them(param: str, value: str) -> None:
    with pytest.raises(ParamError) as info:
        stream_params(**{param: value})
    assert info.value.param == param
    assert info.value.allowed


# -- control messages and wire JSON ----------------------------------------------------------


def test_keepalive_and_unknown_types() -> None:
    assert parse_control('{"type":"keepalive"}') is Control.KEEPALIVE
    for text in ('{"type":"flush"}', '{"type":"ping","n":1}', '{"type":"FINALIZE"}'):
        with pytest.raises(UnknownControlError, match="ignored"):
            parse_control(text)
    for text in ("hello", "[1]", '{"type":5}', "{}"):
        with pytest.raises(ControlError) as info:
            parse_control(text)
        assert not isinstance(info.value, UnknownControlError)


def test_wire_json_of_pong_warning_and_speech_final() -> None:
    options = TextOptions(word_timestamps=False)
    assert event_message(PongEvent(), "s", options) == {"type": "pong", "session_id": "s"}
    warning = event_message(WarningEvent("unknown_message", "ignored"), "s", options)
    assert warning["type"] == "warning" and "error" not in warning  # LiveKit: error = fatal
    for reason, speech_final in [
        (FinalReason.EOU, True),
        (FinalReason.FINALIZE, True),
        (FinalReason.CLOSE, True),
        (FinalReason.MAX_WORDS, False),
        (FinalReason.MAX_LENGTH, False),
    ]:
        event = TranscriptEvent(0, HI, is_final=True, reason=reason)
        assert event_message(event, "s", options)["speech_final"] is speech_final
    partial = TranscriptEvent(0, HI, is_final=False, reason=None)
    assert event_message(partial, "s", options)["speech_final"] is False


def test_the_runner_answers_keepalive_and_unknown_types_and_goes_on(
    tmp_path: Path,
) -> None:
    frames = ['{"type":"keepalive"}', '{"type":"ping"}', "hello", '{"type":"close_stream"}']
    socket = FakeSocket([{"type": "websocket.receive", "text": f} for f in frames])
    with ThreadPoolExecutor(max_workers=1) as pool:
        _, metrics = run_session(socket, pool, tmp_path)
    sent = [json.loads(m) for m in socket.sent]
    assert [m["type"] for m in sent] == ["pong", "warning", "error", "transcription"]
    assert sent[1]["warning"] == "unknown_message" and "'ping'" in sent[1]["message"]
    assert sent[2]["error"] == "bad_message"
    assert sent[3]["is_last"] and sent[3]["speech_final"]
    assert socket.closed_with == [1000]
    for kind in ("pong", "warning", "error"):
        assert metrics.registry.get_sample_value("pulse_stt_messages_total", {"type": kind}) == 1
