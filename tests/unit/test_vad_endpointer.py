"""`pulse_stt.stream.vad` (streaming Silero) and `pulse_stt.stream.endpointer`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pulse_stt.stream.endpointer import Boundary, BoundaryEvent, Endpointer, EndpointerConfig
from pulse_stt.stream.vad import FRAME_SAMPLES, StreamingVad

SPEECH_WAV = Path(
    "/usr/share/pocketsphinx/test/data/librivox/sense_and_sensibility_01_austen_64kb-0880.wav"
)

# -- VAD -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    if not SPEECH_WAV.exists():
        pytest.skip(f"{SPEECH_WAV} not found (pocketsphinx-testdata)")
    from faster_whisper.audio import decode_audio

    audio = decode_audio(str(SPEECH_WAV), sampling_rate=16000)
    assert isinstance(audio, np.ndarray)
    return audio


def _vad_probs(audio: np.ndarray, chunk: int) -> np.ndarray:
    vad = StreamingVad()
    parts = [vad.process(audio[i : i + chunk]) for i in range(0, audio.size, chunk)]
    parts.append(vad.flush())
    return np.concatenate(parts)


def test_vad_chunking_invariance(speech: np.ndarray) -> None:
    small = _vad_probs(speech, 333)
    large = _vad_probs(speech, 5000)
    whole = _vad_probs(speech, speech.size)
    frames = -(-speech.size // FRAME_SAMPLES)  # the last partial frame is padded on flush
    assert small.size == large.size == whole.size == frames
    np.testing.assert_allclose(small, large, atol=1e-5)
    np.testing.assert_allclose(small, whole, atol=1e-5)


def test_vad_speech_scores_high_somewhere(speech: np.ndarray) -> None:
    probs = _vad_probs(speech, 4096)
    assert probs.dtype == np.float32
    assert probs.max() > 0.9
    assert (probs > 0.5).mean() > 0.3  # a read sentence is mostly speech


def test_vad_silence_scores_low() -> None:
    probs = _vad_probs(np.zeros(3 * 16000, dtype=np.float32), 1600)
    assert probs.size == 3 * 16000 // FRAME_SAMPLES + 1
    assert probs.max() < 0.2


def test_vad_state_is_per_stream(speech: np.ndarray) -> None:
    """A stream that heard speech first must not change another stream's probabilities."""
    silence = np.zeros(16000, dtype=np.float32)
    fresh = StreamingVad().process(silence)
    busy = StreamingVad()
    busy.process(speech)
    again = StreamingVad().process(silence)
    np.testing.assert_array_equal(fresh, again)


def test_vad_partial_frames_wait() -> None:
    vad = StreamingVad()
    assert vad.process(np.zeros(FRAME_SAMPLES - 1, dtype=np.float32)).size == 0
    assert vad.process(np.zeros(1, dtype=np.float32)).size == 1
    assert vad.flush().size == 0  # nothing pending
    assert vad.process(np.zeros(10, dtype=np.float32)).size == 0
    assert vad.flush().size == 1


# -- endpointer ----------------------------------------------------------------------------

HI = 0.9
LO = 0.05


def _run(probs: list[float], config: EndpointerConfig | None = None) -> list[BoundaryEvent]:
    return Endpointer(config or EndpointerConfig()).push(0, probs)


def _kinds(events: list[BoundaryEvent]) -> list[Boundary]:
    return [e.kind for e in events]


def test_speech_starts_after_min_run() -> None:
    assert _run([LO] * 5 + [HI] * 2 + [LO] * 3) == []
    events = _run([LO] * 5 + [HI] * 3)
    assert events == [BoundaryEvent(Boundary.SPEECH_STARTED, 5 * FRAME_SAMPLES, 7)]


def test_single_frame_blip_is_not_speech() -> None:
    endpointer = Endpointer(EndpointerConfig())
    assert endpointer.push(0, [LO] * 5 + [HI] + [LO] * 40) == []
    assert endpointer.in_utterance is False
    # interrupted runs do not add up
    assert endpointer.push(46, [HI, HI, LO, HI, HI, LO] * 5) == []


def test_utterance_ends_after_eou_timeout() -> None:
    # 800 ms of 32 ms frames = 25 silent frames
    assert Boundary.UTTERANCE_ENDED not in _kinds(_run([HI] * 10 + [LO] * 24))
    events = _run([HI] * 10 + [LO] * 25)
    assert _kinds(events) == [Boundary.SPEECH_STARTED, Boundary.UTTERANCE_ENDED]
    started, ended = events
    assert started.sample == 0
    assert ended.sample == 10 * FRAME_SAMPLES  # end of the last speech frame
    assert ended.frame == 10 + 25 - 1


@pytest.mark.parametrize(("eou_ms", "frames"), [(320, 10), (1600, 50), (100, 3)])
def test_eou_timeout_is_configurable(eou_ms: int, frames: int) -> None:
    config = EndpointerConfig(eou_timeout_ms=eou_ms)
    assert Boundary.UTTERANCE_ENDED not in _kinds(_run([HI] * 5 + [LO] * (frames - 1), config))
    events = _run([HI] * 5 + [LO] * frames, config)
    assert _kinds(events) == [Boundary.SPEECH_STARTED, Boundary.UTTERANCE_ENDED]
    assert events[-1].frame == 5 + frames - 1


def test_a_pause_inside_the_utterance_reports_nothing() -> None:
    """A pause shorter than the turn's end of silence is part of the turn: no new onset
    when speech resumes (a client would read speech_ended/speech_started as a new turn)."""
    events = _run([HI] * 10 + [LO] * 16 + [HI] * 3 + [LO] * 25)
    assert _kinds(events) == [Boundary.SPEECH_STARTED, Boundary.UTTERANCE_ENDED]
    assert events[1].sample == 29 * FRAME_SAMPLES  # the end of the speech after the pause


def test_min_speech_ms_is_configurable() -> None:
    assert _run([HI] * 2 + [LO] * 30) == []  # 64 ms is a click at the default 96 ms
    config = EndpointerConfig(min_speech_ms=60)
    assert _kinds(_run([HI] * 2 + [LO] * 30, config)) == [
        Boundary.SPEECH_STARTED,
        Boundary.UTTERANCE_ENDED,
    ]


def test_short_gap_is_not_a_pause() -> None:
    endpointer = Endpointer(EndpointerConfig())
    events = endpointer.push(0, [HI] * 10 + [LO] * 10 + [HI] * 10)
    assert _kinds(events) == [Boundary.SPEECH_STARTED]
    assert endpointer.in_utterance is True
    assert endpointer.last_speech_frame == 29


def test_hysteresis_keeps_speaking_above_offset() -> None:
    config = EndpointerConfig(threshold=0.5)
    # 0.4 is below the onset but above the offset (0.35): still speech once speaking
    assert _kinds(_run([HI] * 5 + [0.4] * 60, config)) == [Boundary.SPEECH_STARTED]
    # but 0.4 never starts speech
    assert _run([0.4] * 60, config) == []
    # and 0.3 is silence
    assert _kinds(_run([HI] * 5 + [0.3] * 25, config))[-1] is Boundary.UTTERANCE_ENDED


def test_utterance_end_resets_for_next_turn() -> None:
    endpointer = Endpointer(EndpointerConfig())
    first = endpointer.push(0, [HI] * 5 + [LO] * 25)
    assert _kinds(first)[-1] is Boundary.UTTERANCE_ENDED
    assert endpointer.in_utterance is False
    assert endpointer.push(30, [LO] * 100) == []  # silence after the end reports nothing
    second = endpointer.push(130, [HI] * 3)
    assert second == [BoundaryEvent(Boundary.SPEECH_STARTED, 130 * FRAME_SAMPLES, 132)]


def test_endpointer_chunking_invariance() -> None:
    rng = np.random.default_rng(7)
    probs = [float(p) for p in rng.choice([LO, 0.4, 0.6, HI], size=3000, p=[0.5, 0.1, 0.1, 0.3])]
    # runs of silence so that utterances do end
    for start in range(0, 3000, 400):
        probs[start : start + 40] = [LO] * 40
    whole = _run(probs)
    assert Boundary.UTTERANCE_ENDED in _kinds(whole)
    endpointer = Endpointer(EndpointerConfig())
    pieces: list[BoundaryEvent] = []
    for first in range(0, len(probs), 7):
        pieces += endpointer.push(first, probs[first : first + 7])
    assert pieces == whole
