"""Client: SRT and WebVTT from word timings — shape (checked by independent parsers), cue
limits, breaks, and WebVTT word timestamp tags."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import srt
import webvtt
from hypothesis import given, settings
from hypothesis import strategies as st

from pulse_stt.client import CueLimits, Word, build_cues, to_srt, to_vtt
from pulse_stt.client.subtitles import sentences, timestamp

TAG = re.compile(r"<(\d\d):(\d\d):(\d\d)\.(\d{3})>")


def words_at(text: str, start: float = 0.0, step: float = 0.3, gap: float = 0.05) -> list[Word]:
    out, t = [], start
    for token in text.split():
        out.append(Word(token, round(t, 3), round(t + step - gap, 3), 0.9))
        t += step
    return out


def _seconds(match: re.Match[str]) -> float:
    h, m, s, ms = (int(g) for g in match.groups())
    return h * 3600 + m * 60 + s + ms / 1000


def test_timestamps_have_the_right_separators() -> None:
    assert timestamp(3661.2346, ",") == "01:01:01,235"
    assert timestamp(0.0) == "00:00:00.000"
    assert timestamp(59.9995) == "00:01:00.000"


def test_srt_shape() -> None:
    words = words_at("Hello there. This is a test of the subtitles, which go on for a while.")
    text = to_srt(words)
    blocks = text.strip("\n").split("\n\n")
    for number, block in enumerate(blocks, start=1):
        lines = block.split("\n")
        assert lines[0] == str(number)
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", lines[1])
        assert 1 <= len(lines[2:]) <= 2 and all(lines[2:])
    parsed = list(srt.parse(text))
    assert [s.index for s in parsed] == list(range(1, len(blocks) + 1))
    assert " ".join(s.content.replace("\n", " ") for s in parsed) == " ".join(w.word for w in words)
    assert parsed[0].content == "Hello there."  # a sentence end closes a cue
    assert parsed[0].start == timedelta(0)


def test_vtt_shape_and_word_tags() -> None:
    words = words_at("Hello there. This is a test of the subtitles, which go on for a while.")
    text = to_vtt(words)
    assert text.startswith("WEBVTT\n\n")
    assert re.search(r"\n\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}\n", text)
    captions = list(webvtt.from_buffer(io.StringIO(text)))
    assert captions[0].text == "Hello there."
    assert captions[0].raw_text == "Hello <00:00:00.300>there."
    plain = to_vtt(words, word_timing=False)
    assert "<" not in plain and [c.text for c in webvtt.from_buffer(io.StringIO(plain))] == [
        c.text for c in captions
    ]


def test_abbreviations_and_initials_do_not_end_a_cue() -> None:
    cues = build_cues(words_at("And Mr. John J. Dashwood had then leisure."))
    assert len(cues) == 1


def test_a_pause_and_a_speaker_change_start_new_cues() -> None:
    first = words_at("we should go now", start=0.0)
    after_pause = words_at("shall we", start=first[-1].end + 1.5)
    assert [c.text for c in build_cues(first + after_pause)] == ["we should go now", "shall we"]

    a = [Word(w.word, w.start, w.end, 0.9, speaker=0) for w in words_at("are you there")]
    b = [Word(w.word, w.start, w.end, 0.9, speaker=1) for w in words_at("yes I am", start=0.9)]
    cues = build_cues(a + b)
    assert [c.speaker for c in cues] == [0, 1]
    assert "[Speaker 0] are you there" in to_srt(a + b)
    assert "<v Speaker 1>yes" in to_vtt(a + b)
    assert [[w.word for w in s] for s in sentences(a + b)] == [
        ["are", "you", "there"],
        ["yes", "I", "am"],
    ]


def test_a_long_sentence_is_split_after_a_comma_and_lines_are_balanced() -> None:
    words = words_at(
        "Had he married a more amiable woman, he might have been made still more "
        "respectable than he was and even amiable himself"
    )
    cues = build_cues(words)
    assert cues[0].text.replace("\n", " ") == "Had he married a more amiable woman,"
    for cue in cues:
        lines = cue.text.split("\n")
        assert all(len(line) <= 42 for line in lines)
        if len(lines) == 2:
            assert abs(len(lines[0]) - len(lines[1])) <= 12


def test_html_special_characters_are_escaped_in_vtt_only() -> None:
    words = words_at("Tom & Jerry <3")
    assert "Tom <00:00:00.300>&amp; <00:00:00.600>Jerry <00:00:00.900>&lt;3" in to_vtt(words)
    assert "Tom & Jerry <3" in to_srt(words)


_word_text = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCDE"), min_size=1, max_size=14
).flatmap(lambda w: st.sampled_from([w, w + ".", w + ",", w + "?", "Mr."]))


@st.composite
def timed_words(draw: st.DrawFn) -> list[Word]:
    texts = draw(st.lists(_word_text, min_size=1, max_size=80))
    words, t = [], draw(st.floats(0, 100))
    for text in texts:
        t += draw(st.sampled_from([0.0, 0.0, 0.05, 0.2, 1.0, 2.5]))  # gaps, sometimes none
        length = draw(st.floats(0.0, 1.2))
        speaker = draw(st.sampled_from([None, None, 0, 1]))
        words.append(Word(text, round(t, 3), round(t + length, 3), 0.9, speaker))
        t += length
    return words


@settings(max_examples=150, deadline=None)
@given(timed_words())
def test_cue_invariants_hold_for_any_words(words: list[Word]) -> None:
    limits = CueLimits()
    cues = build_cues(words, limits)
    # every word, in order, exactly once
    assert [w for c in cues for w in c.words] == words
    previous_end = -1.0
    for cue in cues:
        lines = cue.text.split("\n")
        assert 1 <= len(lines) <= limits.max_lines
        prefix = len(f"[Speaker {cue.speaker}] ") if cue.speaker is not None else 0
        if len(cue.words) > 1:
            assert len(lines[0]) + prefix <= limits.max_line_chars
            assert all(len(line) <= limits.max_line_chars for line in lines[1:])
            assert cue.words[-1].end - cue.words[0].start <= limits.max_duration_s
        assert cue.end > cue.start >= previous_end - 1e-9
        assert len({w.speaker for w in cue.words}) == 1
        previous_end = cue.end

    parsed_srt = list(srt.parse(to_srt(cues)))
    assert len(parsed_srt) == len(cues)

    vtt_text = to_vtt(cues)
    captions = list(webvtt.from_buffer(io.StringIO(vtt_text)))
    assert len(captions) == len(cues)
    for caption, cue in zip(captions, cues, strict=True):
        tags = [_seconds(m) for m in TAG.finditer(caption.raw_text)]
        bounds = [round(cue.start, 3), *tags, round(cue.end, 3)]
        assert bounds == sorted(bounds) and len(set(bounds)) == len(bounds), caption.raw_text
        assert TAG.sub("", caption.raw_text).replace("<v Speaker ", "").count("<") == 0
