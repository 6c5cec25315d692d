"""`pulse_stt.stream.session.StreamSession` fed real speech (LibriVox clips)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import soxr

from pulse_stt.stream.session import (
    SessionAction,
    SessionConfig,
    StreamSession,
    UtteranceAudio,
    VadNotice,
)

RATE = 16_000
FRAME_BYTES = 1280  # 40 ms of linear16 at 16 kHz
GAP_S = 1.5


def feed_all(session: StreamSession, pcm: bytes, frame: int = FRAME_BYTES) -> list[SessionAction]:
    actions: list[SessionAction] = []
    for i in range(0, len(pcm), frame):
        actions += session.feed(pcm[i : i + frame])
    return actions


def finals(actions: list[SessionAction]) -> list[UtteranceAudio]:
    return [a for a in actions if isinstance(a, UtteranceAudio) and a.is_final]


def partials(actions: list[SessionAction]) -> list[UtteranceAudio]:
    return [a for a in actions if isinstance(a, UtteranceAudio) and not a.is_final]


def duration(u: UtteranceAudio) -> float:
    return u.audio.size / RATE


def with_gaps(clips: list[np.ndarray], gap_s: float = GAP_S) -> tuple[np.ndarray, list[float]]:
    """The clips with `gap_s` of digital silence after each, and each clip's start time."""
    gap = np.zeros(int(gap_s * RATE), dtype=np.int16)
    parts: list[np.ndarray] = []
    starts: list[float] = []
    pos = 0
    for clip in clips:
        starts.append(pos / RATE)
        parts += [clip, gap]
        pos += clip.size + gap.size
    return np.concatenate(parts), starts


def to_rate(pcm16: np.ndarray, rate: int) -> np.ndarray:
    """int16 at 16 kHz → int16 at `rate` (soxr, HQ)."""
    if rate == RATE:
        return pcm16
    audio = soxr.resample(pcm16.astype(np.float32) / 32768.0, RATE, rate)
    return (np.clip(audio, -1.0, 32767 / 32768) * 32768).round().astype("<i2")


def run_session(
    pcm16: np.ndarray, rate: int = RATE, *, max_utterance_s: float = 25.0
) -> list[SessionAction]:
    session = StreamSession(SessionConfig("linear16", rate, max_utterance_s=max_utterance_s))
    actions = feed_all(session, pcm16.astype("<i2").tobytes())
    actions += session.close()
    assert session.audio_seconds == pytest.approx(pcm16.size / rate)
    return actions


@pytest.fixture(scope="module")
def gapped(librivox_clips: list[np.ndarray]) -> tuple[np.ndarray, list[float]]:
    return with_gaps(librivox_clips)


@pytest.fixture(scope="module")
def gapped_actions(gapped: tuple[np.ndarray, list[float]]) -> list[SessionAction]:
    return run_session(gapped[0])


# -- one final per clip --------------------------------------------------------------------


def _check_one_final_per_clip(
    actions: list[SessionAction], clips: list[np.ndarray], starts: list[float], total_s: float
) -> None:
    done = finals(actions)
    eou = [f for f in done if f.reason == "eou"]
    assert len(eou) == len(clips), [(f.offset, duration(f), f.reason) for f in done]
    assert [f.reason for f in done] == ["eou"] * len(clips) + ["close"]
    assert [f.utterance for f in done] == list(range(len(clips) + 1))
    offsets = [f.offset for f in done]
    assert offsets == sorted(offsets)
    assert len(set(offsets)) == len(offsets)
    assert sum(f.audio.size for f in done) <= round(total_s * RATE)
    for final, clip, start in zip(eou, clips, starts, strict=True):
        clip_s = clip.size / RATE
        end = final.offset + duration(final)
        # the final is this clip: it lies around the clip and covers most of it
        assert start - 0.35 <= final.offset and end <= start + clip_s + 0.35
        overlap = min(end, start + clip_s) - max(final.offset, start)
        assert overlap >= 0.85 * clip_s
        assert final.audio.dtype == np.float32
        assert np.abs(final.audio).max() > 0.05


def test_one_eou_final_per_clip(
    gapped: tuple[np.ndarray, list[float]],
    gapped_actions: list[SessionAction],
    librivox_clips: list[np.ndarray],
) -> None:
    pcm, starts = gapped
    _check_one_final_per_clip(gapped_actions, librivox_clips, starts, pcm.size / RATE)


@pytest.mark.parametrize("rate", [8000, 48000])
def test_one_eou_final_per_clip_at_other_rates(
    rate: int, gapped: tuple[np.ndarray, list[float]], librivox_clips: list[np.ndarray]
) -> None:
    pcm, starts = gapped
    resampled = to_rate(pcm, rate)
    actions = run_session(resampled, rate)
    _check_one_final_per_clip(actions, librivox_clips, starts, resampled.size / rate)


def test_final_audio_is_the_input_audio(gapped: tuple[np.ndarray, list[float]]) -> None:
    """At 16 kHz linear16 nothing is resampled: a final is an exact slice of the input."""
    pcm, _ = gapped
    reference = pcm.astype(np.float32) / 32768.0
    for final in finals(run_session(pcm)):
        start = round(final.offset * RATE)
        np.testing.assert_array_equal(final.audio, reference[start : start + final.audio.size])


def test_partials_precede_their_final(gapped_actions: list[SessionAction]) -> None:
    found = partials(gapped_actions)
    assert found
    final_at = {
        a.utterance: i
        for i, a in enumerate(gapped_actions)
        if isinstance(a, UtteranceAudio) and a.is_final
    }
    by_utterance = {f.utterance: f for f in finals(gapped_actions)}
    for i, action in enumerate(gapped_actions):
        if not isinstance(action, UtteranceAudio) or action.is_final:
            continue
        assert action.reason is None
        assert i < final_at[action.utterance]
        final = by_utterance[action.utterance]
        assert action.offset == final.offset
        n = min(action.audio.size, final.audio.size)
        assert n >= int(0.3 * RATE)
        np.testing.assert_array_equal(action.audio[:n], final.audio[:n])
    # each clip got partials, and they grow
    for utterance in range(5):
        sizes = [p.audio.size for p in found if p.utterance == utterance]
        assert sizes
        assert sizes == sorted(sizes)


def test_vad_notices(gapped_actions: list[SessionAction]) -> None:
    notices = [a for a in gapped_actions if isinstance(a, VadNotice)]
    started = [n for n in notices if n.kind == "speech_started"]
    ended = [n for n in notices if n.kind == "speech_ended"]
    assert len(started) >= 5
    assert len(ended) >= 5
    times = [n.timestamp for n in notices]
    assert times == sorted(times)
    # started and ended alternate, one pair per turn: a pause inside a turn reports nothing
    assert [n.kind for n in notices] == ["speech_started", "speech_ended"] * len(started)
    # a turn's speech_ended comes right after its eou final (a client that closes the turn
    # on speech_ended has all of its text by then)
    for i, action in enumerate(gapped_actions):
        if isinstance(action, VadNotice) and action.kind == "speech_ended":
            before = gapped_actions[i - 1]
            assert isinstance(before, UtteranceAudio)
            assert before.is_final and before.reason == "eou"


# -- finalize / close ----------------------------------------------------------------------


def test_finalize_without_speech_gives_one_empty_final() -> None:
    session = StreamSession(SessionConfig("linear16", RATE))
    assert feed_all(session, bytes(2 * RATE)) == []  # 1 s of silence: nothing happens
    actions = session.finalize()
    assert len(actions) == 1
    final = actions[0]
    assert isinstance(final, UtteranceAudio)
    assert final.is_final
    assert final.from_finalize
    assert not final.is_last
    assert final.audio.size == 0
    assert final.utterance == 0
    assert final.offset == pytest.approx(1.0)


def test_finalize_on_fresh_session() -> None:
    session = StreamSession(SessionConfig("linear16", RATE))
    actions = session.finalize()
    assert len(actions) == 1
    final = actions[0]
    assert isinstance(final, UtteranceAudio)
    assert (final.is_final, final.from_finalize, final.audio.size) == (True, True, 0)
    # a second finalize is a new (empty) turn
    again = session.finalize()
    assert len(again) == 1
    assert isinstance(again[0], UtteranceAudio)
    assert again[0].utterance == 1


def test_finalize_mid_speech_then_continue(librivox_clips: list[np.ndarray]) -> None:
    clip = librivox_clips[0]
    half = clip.size // 2
    session = StreamSession(SessionConfig("linear16", RATE))
    actions = feed_all(session, clip[:half].tobytes())
    assert partials(actions)
    cut = session.finalize()
    # exactly one final, then the end of the turn's speech (speech_started was reported)
    assert len(cut) == 2
    first, ended = cut
    assert isinstance(first, UtteranceAudio)
    assert isinstance(ended, VadNotice) and ended.kind == "speech_ended"
    assert first.from_finalize
    assert first.audio.size > RATE
    first_end = first.offset + duration(first)
    assert first_end == pytest.approx(half / RATE, abs=1e-9)
    rest = feed_all(session, clip[half:].tobytes() + bytes(2 * RATE))
    rest += session.close()
    later = finals(rest)
    assert later[0].reason == "eou"
    assert later[0].utterance == 1
    assert later[0].offset >= first_end - 1e-9  # no audio is decoded twice
    assert later[-1].is_last


def test_close_ends_with_last_final(librivox_clips: list[np.ndarray]) -> None:
    session = StreamSession(SessionConfig("linear16", RATE))
    clip = librivox_clips[1]
    actions = feed_all(session, clip.tobytes())
    assert not session.closed
    actions += session.close()
    assert session.closed
    last = actions[-1]
    assert isinstance(last, UtteranceAudio)
    assert last.is_final and last.is_last and last.reason == "close"
    assert [f for f in finals(actions) if f.is_last] == [last]
    # the speech ran to the end of the input: the close final holds it, up to the last sample
    assert last.audio.size > RATE
    assert last.offset + duration(last) == pytest.approx(clip.size / RATE, abs=1e-3)


def test_close_after_silence_is_empty_and_last() -> None:
    session = StreamSession(SessionConfig("linear16", RATE))
    feed_all(session, bytes(RATE))
    actions = session.close()
    assert len(actions) == 1
    last = actions[0]
    assert isinstance(last, UtteranceAudio)
    assert last.is_last and last.audio.size == 0
    assert last.offset == pytest.approx(0.5, abs=0.04)


def test_odd_byte_frames_lose_nothing(librivox_clips: list[np.ndarray]) -> None:
    clip = librivox_clips[1].tobytes() + bytes(2 * RATE)
    session = StreamSession(SessionConfig("linear16", RATE))
    actions = feed_all(session, clip, frame=1279) + session.close()
    assert session.input_samples == len(clip) // 2
    reference = run_session(np.frombuffer(clip, dtype="<i2"))
    ours = [(f.offset, f.reason) for f in finals(actions)]
    assert ours == [(f.offset, f.reason) for f in finals(reference)]


# -- long turns ----------------------------------------------------------------------------


def _check_contiguous_cover(done: list[UtteranceAudio], total_s: float, max_s: float) -> None:
    cuts = [f for f in done if f.reason == "max_length"]
    assert cuts
    for f in done:
        assert duration(f) <= max_s + 1e-9
    assert done[0].offset < 0.5
    for prev, nxt in pairwise(done):
        assert nxt.offset == pytest.approx(prev.offset + duration(prev), abs=1e-3)
        assert nxt.utterance == prev.utterance + 1
    assert done[-1].offset + duration(done[-1]) == pytest.approx(total_s, abs=1e-3)


def test_long_speech_split_at_max_length(librivox_clips: list[np.ndarray]) -> None:
    speech = np.concatenate(librivox_clips * 2)  # ~49 s with only natural pauses
    total_s = speech.size / RATE
    assert total_s > 40
    done = finals(run_session(speech))
    assert [f.reason for f in done][-1] == "close"
    assert "eou" not in [f.reason for f in done]  # no pause reaches 800 ms
    _check_contiguous_cover(done, total_s, 25.0)


def test_long_speech_split_many_times(librivox_clips: list[np.ndarray]) -> None:
    speech = np.concatenate(librivox_clips * 2)
    done = finals(run_session(speech, max_utterance_s=10.0))
    assert sum(f.reason == "max_length" for f in done) >= 4
    _check_contiguous_cover(done, speech.size / RATE, 10.0)


def test_large_frame_still_respects_max_length(librivox_clips: list[np.ndarray]) -> None:
    # 15.4 s of speech + 1 s of silence in one 525 kB frame (under the 1 MiB frame limit)
    pcm = np.concatenate([*librivox_clips[:3], np.zeros(RATE, dtype=np.int16)])
    session = StreamSession(SessionConfig("linear16", RATE, max_utterance_s=10.0))
    done = finals(session.feed(pcm.tobytes()) + session.close())
    assert max(duration(f) for f in done) <= 10.0


# -- speculative finals --------------------------------------------------------------------


def speculative(actions: list[SessionAction]) -> list[UtteranceAudio]:
    return [a for a in actions if isinstance(a, UtteranceAudio) and a.speculative]


def test_pause_starts_a_speculation_that_the_final_reuses(
    librivox_clips: list[np.ndarray],
) -> None:
    session = StreamSession(SessionConfig("linear16", RATE, eou_timeout_ms=2000))
    pause = np.zeros(int(0.4 * RATE), dtype=np.int16)
    actions = feed_all(session, np.concatenate([librivox_clips[1], pause]).tobytes())
    guesses = speculative(actions)
    assert guesses, "no speculative pass after the speech ended"
    last = guesses[-1]
    assert not last.is_final
    # the speculation covers the turn up to its speech end (plus a short tail), no further
    assert duration(last) <= librivox_clips[1].size / RATE + 0.4
    [final] = finals(session.finalize())
    assert final.reuses_speculation
    assert final.utterance == last.utterance and final.offset == last.offset


def test_speech_after_a_speculation_means_a_fresh_final(
    librivox_clips: list[np.ndarray],
) -> None:
    session = StreamSession(SessionConfig("linear16", RATE, eou_timeout_ms=2000))
    pause = np.zeros(int(0.4 * RATE), dtype=np.int16)
    actions = feed_all(
        session, np.concatenate([librivox_clips[1], pause, librivox_clips[2][:RATE]]).tobytes()
    )
    assert speculative(actions)
    [final] = finals(session.finalize())
    assert not final.reuses_speculation


def test_no_partials_over_silence(librivox_clips: list[np.ndarray]) -> None:
    session = StreamSession(SessionConfig("linear16", RATE, eou_timeout_ms=5000))
    during = feed_all(session, librivox_clips[1].tobytes())
    assert partials(during), "speech gets partials"
    silence = np.zeros(RATE, dtype=np.int16)
    feed_all(session, silence.tobytes())  # the VAD's hangover may still count as speech
    later = feed_all(session, np.concatenate([silence, silence, silence]).tobytes())
    assert partials(later) == []


def test_whole_file_sessions_never_speculate(librivox_clips: list[np.ndarray]) -> None:
    session = StreamSession(SessionConfig("linear16", RATE, partials=False))
    pause = np.zeros(RATE, dtype=np.int16)
    actions = feed_all(session, np.concatenate([librivox_clips[1], pause]).tobytes())
    assert speculative(actions) == []


def test_no_partial_follows_a_speculation_of_the_same_speech(
    librivox_clips: list[np.ndarray],
) -> None:
    """In 100 ms frames the speculation and a due partial come from one feed: the partial
    would replace the speculation in the engine's queue (and the final would decode the
    turn again), so after a speculation only new speech brings a partial."""
    session = StreamSession(SessionConfig("linear16", RATE, eou_timeout_ms=300))
    pause = np.zeros(int(1.0 * RATE), dtype=np.int16)
    for clip in librivox_clips:
        actions = feed_all(session, np.concatenate([clip, pause]).tobytes(), frame=3200)
        work = [a for a in actions if isinstance(a, UtteranceAudio)]
        kinds = [a.kind.value for a in work]
        assert "speculative" in kinds, kinds
        last_guess = max(i for i, a in enumerate(work) if a.speculative)
        assert all(a.is_final for a in work[last_guess + 1 :]), kinds
        [final] = finals(actions)
        assert final.reuses_speculation, kinds
