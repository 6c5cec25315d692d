"""Two people who sound alike (cluster.two_voices) and how the tracker and files use it.

Synthetic voice windows: a voice is a direction, each window that direction plus noise.
The "call" voices are closer to each other (cosine 0.8) than the tracker's "someone
new" threshold allows for, but each is tight around itself, as on one phone line.
"""

from __future__ import annotations

import numpy as np

from pulse_stt.speakers.cluster import (
    TwoVoices,
    kmeans,
    pruned_affinity,
    separation,
    split_in_two,
    two_voices,
)
from pulse_stt.speakers.encoder import TurnWindows
from pulse_stt.speakers.tracker import SpeakerTracker, TrackerConfig, label_file

_DIM = 256
_CONFIG = TrackerConfig()


def _pair(similarity: float, seed: int = 0) -> np.ndarray:
    """Two unit voices with the given cosine."""
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(_DIM)
    a /= np.linalg.norm(a)
    other = rng.standard_normal(_DIM)
    other -= (other @ a) * a
    other /= np.linalg.norm(other)
    b = similarity * a + np.sqrt(1 - similarity**2) * other
    return np.stack([a, b])


def _windows(voices: np.ndarray, plan: list[int], noise: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    emb = voices[plan] + noise * rng.standard_normal((len(plan), _DIM))
    return (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)


def _turn(embeddings: np.ndarray, offset: float) -> TurnWindows:
    starts = offset + 0.5 * np.arange(len(embeddings))
    return TurnWindows(
        offset=offset,
        duration=0.5 * len(embeddings) + 1.1,
        starts=starts,
        ends=starts + 1.6,
        embeddings=embeddings,
        speech=np.ones(len(embeddings)),
    )


# A call: short turns back and forth (3–6 windows each), all inside one VAD turn.
_CALL = [0] * 5 + [1] * 4 + [0] * 3 + [1] * 6 + [0] * 5 + [1] * 5 + [0] * 4 + [1] * 6 + [0] * 4


def _split(embeddings: np.ndarray, min_half: int = 8) -> TwoVoices | None:
    return two_voices(
        embeddings,
        np.ones(len(embeddings)),
        min_separation=_CONFIG.split_min_separation,
        min_ratio=_CONFIG.split_min_ratio,
        min_half=min_half,
    )


def test_kmeans_and_spectral_split_find_two_groups() -> None:
    points = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0], [5.1, 5.0], [5.0, 5.1]])
    labels = kmeans(points, 2)
    assert len(set(labels[:3])) == 1 and len(set(labels[3:])) == 1 and labels[0] != labels[3]
    voices = _pair(0.5)
    emb = _windows(voices, [0] * 10 + [1] * 10, noise=0.03)
    affinity = pruned_affinity(emb)
    assert np.allclose(affinity, affinity.T)
    split = split_in_two(emb)
    assert split is not None
    assert len(set(split[:10])) == 1 and len(set(split[10:])) == 1 and split[0] != split[10]
    assert separation(emb, np.ones(20), split, 0, 1) > 0.3
    assert split_in_two(emb[:5]) is None  # too few windows


def test_two_close_voices_are_found_and_one_voice_is_not_split() -> None:
    voices = _pair(0.8)  # closer than "someone new" (0.75) would ever notice
    call = _windows(voices, _CALL, noise=0.02)
    found = _split(call)
    assert found is not None
    truth = np.array(_CALL)
    agree = (found.labels == truth).mean()
    assert max(agree, 1 - agree) == 1.0
    assert found.separation > _CONFIG.split_min_ratio * found.within
    # One voice, as noisy as those two together: its halves are like its quarters.
    for seed in range(5):
        solo = _windows(voices[:1], [0] * 42, noise=0.04, seed=seed)
        assert _split(solo) is None, seed
    # The same voice drifting slowly (a speaker turning from the microphone).
    drift = np.linspace(0, 1, 42)[:, None]
    rng = np.random.default_rng(3)
    away = rng.standard_normal(_DIM)
    away /= np.linalg.norm(away)
    drifting = voices[0] + 0.25 * drift * away + 0.03 * rng.standard_normal((42, _DIM))
    assert _split(drifting / np.linalg.norm(drifting, axis=1, keepdims=True)) is None


def test_too_little_voice_in_a_half_is_not_a_second_person() -> None:
    voices = _pair(0.8)
    emb = _windows(voices, [0] * 20 + [1] * 6, noise=0.02)
    assert _split(emb, min_half=8) is None
    assert _split(emb, min_half=6) is not None


def test_live_call_in_one_turn_gets_two_speakers() -> None:
    voices = _pair(0.8)
    emb = _windows(voices, _CALL, noise=0.02)
    tracker = SpeakerTracker()
    track = tracker.label(_turn(emb, 0.0), commit=True)
    assert len(tracker.speakers) == 2
    assert track.spans[0].speaker == 0  # whoever opens is speaker 0
    got = [track.label(s, s + 0.1) for s in _turn(emb, 0.0).centers]
    labels = np.array([g[0] for g in got if g is not None])
    assert (labels == np.array(_CALL)).mean() > 0.9


def test_live_split_keeps_the_known_speaker_number() -> None:
    """Speaker 0 talks alone first; when the second person shows up, they become 1, and
    speaker 0 stays 0 (labels already given never change meaning)."""
    voices = _pair(0.8)
    tracker = SpeakerTracker()
    first = tracker.label(_turn(_windows(voices, [1] * 14, noise=0.02), 0.0), commit=True)
    assert {s.speaker for s in first.spans} == {0}
    call = _windows(voices, _CALL, noise=0.02, seed=4)
    track = tracker.label(_turn(call, 20.0), commit=True)
    got = np.array([track.label(c, c + 0.1)[0] for c in _turn(call, 20.0).centers])  # type: ignore[index]
    # voice 1 was speaker 0 before, so it still is; voice 0 is the newcomer
    assert (got == 1 - np.array(_CALL)).mean() > 0.9


def test_one_voice_session_stays_speaker_zero() -> None:
    voices = _pair(0.8)
    tracker = SpeakerTracker()
    for i in range(12):
        emb = _windows(voices[:1], [0] * 9, noise=0.04, seed=i)
        track = tracker.label(_turn(emb, 10.0 * i), commit=True)
        assert {s.speaker for s in track.spans} == {0}
    assert len(tracker.speakers) == 1


def test_file_with_one_call_turn_gets_two_speakers_and_solo_gets_one() -> None:
    voices = _pair(0.8)
    tracks = label_file([_turn(_windows(voices, _CALL, noise=0.02), 0.0)])
    assert {s.speaker for t in tracks for s in t.spans} == {0, 1}
    solo = [_turn(_windows(voices[:1], [0] * 9, noise=0.04, seed=i), 10.0 * i) for i in range(6)]
    assert {s.speaker for t in label_file(solo) for s in t.spans} == {0}


def _third(voices: np.ndarray, seed: int = 7) -> np.ndarray:
    """A voice far from both (cosine about 0.5), as another person across the table."""
    rng = np.random.default_rng(seed)
    other = rng.standard_normal(_DIM)
    other -= voices.T @ np.linalg.lstsq(voices.T, other, rcond=None)[0]
    other /= np.linalg.norm(other)
    mean = voices.mean(axis=0) / np.linalg.norm(voices.mean(axis=0))
    return 0.5 * mean + np.sqrt(1 - 0.25) * other


def test_largest_of_several_speakers_is_split_only_when_it_is_two() -> None:
    """A meeting: someone distinct says a little, and most of the voice is two people who
    sound alike (one cluster to the "someone new" threshold). That cluster is split, live
    and in files; one dominant voice with the same share is not."""
    pair = _pair(0.8)
    voices = np.concatenate([pair, _third(pair)[None]])
    turns = [_turn(_windows(voices, [2] * 8, noise=0.02, seed=9), 0.0)]
    turns += [_turn(_windows(voices, _CALL, noise=0.02, seed=s), 10.0 + 30 * s) for s in range(2)]
    tracker = SpeakerTracker()
    for turn in turns:
        tracker.label(turn, commit=True)
    assert len(tracker.speakers) == 3
    assert {s.speaker for t in label_file(turns) for s in t.spans} == {0, 1, 2}
    solo = [turns[0]]
    solo += [
        _turn(_windows(voices[:1], [0] * 42, noise=0.04, seed=s), 10.0 + 30 * s) for s in range(2)
    ]
    tracker = SpeakerTracker()
    for turn in solo:
        tracker.label(turn, commit=True)
    assert len(tracker.speakers) == 2
    assert {s.speaker for t in label_file(solo) for s in t.spans} == {0, 1}
