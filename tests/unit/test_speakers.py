"""Speaker encoder port, incremental embedding, the live tracker and file clustering."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from pulse_stt.api.schemas import transcription_message
from pulse_stt.protocol import TextOptions
from pulse_stt.speakers.embedder import TurnEmbedder
from pulse_stt.speakers.encoder import TurnWindows, VoiceEncoder, window_starts
from pulse_stt.speakers.tracker import (
    SpeakerSpan,
    SpeakerTrack,
    SpeakerTracker,
    label_file,
)
from pulse_stt.speakers.weights import SpeakerWeightsError, load_legacy_torch_checkpoint
from pulse_stt.text.format import finish
from pulse_stt.text.tokens import Token

FIXTURE = Path(__file__).parent / "fixtures" / "resemblyzer_reference.npz"


@pytest.fixture(scope="module")
def encoder() -> VoiceEncoder:
    return VoiceEncoder()


def test_numpy_port_matches_the_torch_model(encoder: VoiceEncoder) -> None:
    """Reference computed once with resemblyzer 0.1.4 + torch + librosa (see fixture)."""
    reference = np.load(FIXTURE)
    audio = reference["audio"].astype(np.float32) / 32768
    mel = encoder.mel_frames(audio)
    assert mel.shape == reference["mel"].shape
    # librosa 0.11 pads the signal's edges with zeros, the trained model saw reflection;
    # every frame away from the two edges must agree.
    inner = slice(3, -3)
    scale = reference["mel"].max()
    assert np.abs(mel[inner] - reference["mel"][inner]).max() / scale < 1e-5
    np.testing.assert_allclose(encoder.mel_frames(audio, 10, 50), mel[10:50], rtol=1e-5)
    got = encoder.embed_mels(np.stack([reference["mel"][0:160], reference["mel"][40:200]]))
    np.testing.assert_allclose(got, reference["embeddings"], atol=1e-5)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("pwned",))


def test_weights_loader_refuses_code_and_missing_files(tmp_path: Path) -> None:
    bad = tmp_path / "evil.pt"
    with bad.open("wb") as f:
        pickle.dump(0x1950A86A20F9469CFC6C, f, protocol=2)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({}, f, protocol=2)
        pickle.dump({"model_state": _Evil()}, f, protocol=2)
    with pytest.raises(SpeakerWeightsError, match=r"unexpected object .*print"):
        load_legacy_torch_checkpoint(bad)
    not_torch = tmp_path / "zero.pt"
    not_torch.write_bytes(pickle.dumps(12345))
    with pytest.raises(SpeakerWeightsError, match="not a legacy torch checkpoint"):
        load_legacy_torch_checkpoint(not_torch)
    with pytest.raises(SpeakerWeightsError, match="not found"):
        VoiceEncoder(tmp_path / "missing.pt")


def test_window_layout() -> None:
    assert window_starts(30) == []  # under 0.4 s: too little voice
    assert window_starts(100) == [(0, 100)]
    assert window_starts(160) == [(0, 160)]
    ranges = window_starts(400)
    assert ranges[0] == (0, 160) and ranges[-1] == (240, 400)
    assert all(e - s == 160 for s, e in ranges)
    assert [s for s, _ in ranges] == sorted({s for s, _ in ranges})


def test_partials_reuse_windows_and_final_equals_fresh(encoder: VoiceEncoder) -> None:
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(16000 * 5) * 0.05).astype(np.float32)
    live = TurnEmbedder(encoder)
    for end in (16000 * 2, 16000 * 3, 16000 * 4):
        live.embed(audio[:end], 1.0, utterance=3, final=False)
    final = live.embed(audio, 1.0, utterance=3, final=True)
    fresh = TurnEmbedder(encoder).embed(audio, 1.0, utterance=3, final=True)
    np.testing.assert_allclose(final.embeddings, fresh.embeddings, atol=1e-6)
    np.testing.assert_allclose(final.starts, fresh.starts)
    assert final.starts[0] == pytest.approx(1.0)
    assert final.ends[-1] == pytest.approx(1.0 + 5.0, abs=0.02)


# --- tracker, with synthetic voices: each speaker is a direction plus noise ------------

_DIM = 256


def _voices(n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(_DIM)  # voices share a part, as real embeddings do (cos ≈ 0.5)
    dirs = [base + rng.standard_normal(_DIM) for _ in range(n)]
    return np.stack([d / np.linalg.norm(d) for d in dirs])


def _turn(voices: np.ndarray, plan: list[int], offset: float, seed: int = 0) -> TurnWindows:
    """Windows every 0.5 s; plan[i] is the speaker of window i."""
    rng = np.random.default_rng(seed)
    emb = voices[plan] + 0.02 * rng.standard_normal((len(plan), _DIM))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    starts = offset + 0.5 * np.arange(len(plan))
    return TurnWindows(
        offset=offset,
        duration=0.5 * len(plan) + 1.1,
        starts=starts,
        ends=starts + 1.6,
        embeddings=emb.astype(np.float32),
        speech=np.ones(len(plan)),
    )


def _speakers_of(track: SpeakerTrack) -> list[int]:
    return [s.speaker for s in track.spans]


def test_tracker_keeps_numbers_across_turns_and_finds_changes_inside_one() -> None:
    v = _voices(3)
    tracker = SpeakerTracker()
    assert _speakers_of(tracker.label(_turn(v, [0] * 4, 0.0), commit=True)) == [0]
    assert _speakers_of(tracker.label(_turn(v, [1] * 4, 5.0), commit=True)) == [1]
    assert _speakers_of(tracker.label(_turn(v, [0] * 3, 10.0), commit=True)) == [0]
    mixed = tracker.label(_turn(v, [1] * 4 + [2] * 4, 15.0), commit=True)
    assert _speakers_of(mixed) == [1, 2]
    boundary = mixed.spans[0].end
    assert 16.9 < boundary < 18.6  # between the last window of 1 and the first of 2
    assert mixed.label(15.2, 15.5) == (1, mixed.spans[0].confidence)
    assert all(0.5 < s.confidence <= 1.0 for s in mixed.spans)
    assert _speakers_of(tracker.label(_turn(v, [2] * 3, 25.0), commit=True)) == [2]


def test_partials_do_not_change_what_the_tracker_knows() -> None:
    v = _voices(2)
    tracker = SpeakerTracker()
    tracker.label(_turn(v, [0] * 4, 0.0), commit=True)
    provisional = tracker.label(_turn(v, [1] * 3, 5.0), commit=False)
    assert _speakers_of(provisional) == [1]
    assert len(tracker.speakers) == 1
    assert _speakers_of(tracker.label(_turn(v, [0] * 3, 9.0), commit=True)) == [0]


def test_one_odd_window_does_not_flip_the_label() -> None:
    """A single window unlike anyone (a cough, a door) is not a new speaker."""
    v = _voices(3)
    tracker = SpeakerTracker()
    tracker.label(_turn(v, [0] * 6, 0.0), commit=True)
    tracker.label(_turn(v, [1] * 6, 5.0), commit=True)
    assert _speakers_of(tracker.label(_turn(v, [0, 0, 0, 2, 0, 0, 0], 10.0), commit=True)) == [0]


def test_too_short_turn_goes_to_the_last_speaker() -> None:
    v = _voices(2)
    tracker = SpeakerTracker()
    tracker.label(_turn(v, [0] * 4, 0.0), commit=True)
    tracker.label(_turn(v, [1] * 4, 5.0), commit=True)
    empty = TurnWindows(9.0, 0.3, np.zeros(0), np.zeros(0), np.zeros((0, _DIM)), np.zeros(0))
    (span,) = tracker.label(empty, commit=True).spans
    assert span.speaker == 1 and span.confidence < 0.5


def test_file_clustering_numbers_by_first_appearance() -> None:
    v = _voices(3, seed=4)
    plans = [[2] * 4, [0] * 5, [2] * 3, [1] * 4, [0] * 4, [1, 1, 1, 1, 2, 2, 2, 2]]
    turns = [_turn(v, plan, 6.0 * i, seed=i) for i, plan in enumerate(plans)]
    tracks = label_file(turns)
    assert [_speakers_of(t) for t in tracks] == [[0], [1], [0], [2], [1], [2, 0]]


def test_track_label_overlap_then_nearest() -> None:
    track = SpeakerTrack((SpeakerSpan(0, 2, 0, 0.9), SpeakerSpan(2, 4, 1, 0.8)))
    assert track.label(1.5, 2.2) == (0, 0.9)
    assert track.label(1.9, 3.0) == (1, 0.8)
    assert track.label(5.0, 5.2) == (1, 0.8)
    assert SpeakerTrack(()).label(0, 1) is None


def test_words_and_utterances_carry_speakers() -> None:
    tokens = [
        Token("Hi,", 0.0, 0.3, 0.9),
        Token("there", 0.3, 0.6, 0.9),
        Token("friend.", 0.6, 0.9, 0.9),
        Token("Hello", 1.2, 1.5, 0.8),
        Token("back", 1.5, 1.8, 0.8),
        Token("again.", 2.5, 2.8, 0.8),
    ]
    track = SpeakerTrack(
        (SpeakerSpan(0, 1.0, 0, 0.91), SpeakerSpan(1.0, 2.2, 1, 0.7), SpeakerSpan(2.2, 3, 0, 0.6))
    )
    options = TextOptions(word_timestamps=True, sentence_timestamps=True, diarize=True)
    transcript = finish(tokens, options, language="en", languages=("en",), speakers=track)
    assert [w.speaker for w in transcript.words] == [0, 0, 0, 1, 1, 0]
    # "Hello back again." is one sentence but two speakers: two utterances
    assert [(u.text, u.speaker) for u in transcript.utterances] == [
        ("Hi, there friend.", 0),
        ("Hello back", 1),
        ("again.", 0),
    ]
    message = transcription_message(
        session_id="s", transcript=transcript, options=options, is_final=True
    )
    assert message["words"][3] == {
        "word": "Hello",
        "start": 1.2,
        "end": 1.5,
        "confidence": 0.8,
        "speaker": 1,
        "speaker_confidence": 0.7,
    }
    assert message["utterances"][1]["speaker"] == 1
    plain = TextOptions(word_timestamps=True, sentence_timestamps=True)
    message = transcription_message(
        session_id="s", transcript=transcript, options=plain, is_final=True
    )
    assert "speaker" not in message["words"][0] and "speaker" not in message["utterances"][0]
