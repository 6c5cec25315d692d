"""Subtitles from word timings: SubRip (.srt) and WebVTT (.vtt).

Words are grouped into cues that a viewer can read: at most `max_lines` lines of
`max_line_chars` characters (2 × 42, the common broadcast limit) and `max_duration_s`
seconds (6 s). A cue ends at the end of a sentence, at a pause between words, when the
speaker changes (`diarize=true`), and otherwise where it would grow too long, preferably
after a comma. Lines within a cue are balanced.

WebVTT cues carry each word's start as a timestamp tag (`<00:00:01.200>word`), which
players use for karaoke-style highlighting; SRT has no such thing and stays plain.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pulse_stt.client.messages import Word
from pulse_stt.text.sentences import SENTENCE_END, ends_sentence

_CLAUSE_END = (",", ";", ":", "—", "-")


def sentences(words: Iterable[Word]) -> list[tuple[Word, ...]]:
    """Words grouped into sentences (and split where the speaker changes)."""
    groups: list[list[Word]] = []
    open_group = False
    for word in words:
        if not word.word.strip():
            continue
        if not open_group or (groups[-1] and groups[-1][-1].speaker != word.speaker):
            groups.append([])
        groups[-1].append(word)
        open_group = not ends_sentence(word.word)
    return [tuple(g) for g in groups]


@dataclass(frozen=True)
class CueLimits:
    max_line_chars: int = 42
    max_lines: int = 2
    max_duration_s: float = 6.0
    pause_s: float = 0.8  # a gap this long between two words starts a new cue
    min_duration_s: float = 0.8  # short cues stay up this long when the next one allows


@dataclass(frozen=True)
class Cue:
    start: float
    end: float
    words: tuple[Word, ...]
    lines: tuple[tuple[Word, ...], ...]  # the cue's words, broken into display lines
    speaker: int | None = None

    @property
    def text(self) -> str:
        return "\n".join(" ".join(w.word for w in line) for line in self.lines)


def speaker_label(speaker: int) -> str:
    return f"Speaker {speaker}"


def _srt_prefix(speaker: int | None) -> str:
    return "" if speaker is None else f"[{speaker_label(speaker)}] "


def _wrap(
    words: Sequence[Word], max_chars: int, max_lines: int, first_line_extra: int = 0
) -> list[tuple[Word, ...]] | None:
    """The most balanced split of `words` into at most `max_lines` lines of at most
    `max_chars` characters (None when they do not fit). A single word always fits."""
    if not words:
        return []
    lengths = [len(w.word) for w in words]

    def width(i: int, j: int) -> int:  # words[i:j] on one line
        return sum(lengths[i:j]) + (j - i - 1) + (first_line_extra if i == 0 else 0)

    if len(words) == 1:
        return [tuple(words)]
    n = len(words)
    inf = 1 << 30
    for line_count in range(1, min(max_lines, n) + 1):  # the fewest lines that fit
        # cost[k][j]: twice the narrowest possible widest line of words[:j] on k lines,
        # less one when the last break follows punctuation (so ties prefer it)
        cost = [[inf] * (n + 1) for _ in range(line_count + 1)]
        cut = [[0] * (n + 1) for _ in range(line_count + 1)]
        cost[0][0] = 0
        for k in range(1, line_count + 1):
            for j in range(k, n + 1):
                for i in range(k - 1, j):
                    if cost[k - 1][i] >= inf:
                        continue
                    w = width(i, j)
                    if w > max_chars:
                        continue
                    after_punctuation = i > 0 and words[i - 1].word.endswith(
                        _CLAUSE_END + SENTENCE_END
                    )
                    candidate = max(cost[k - 1][i], 2 * w) - (1 if after_punctuation else 0)
                    if candidate < cost[k][j]:
                        cost[k][j], cut[k][j] = candidate, i
        if cost[line_count][n] >= inf:
            continue
        lines: list[tuple[Word, ...]] = []
        j = n
        for k in range(line_count, 0, -1):
            i = cut[k][j]
            lines.insert(0, tuple(words[i:j]))
            j = i
        return lines
    return None


def build_cues(words: Iterable[Word], limits: CueLimits | None = None) -> list[Cue]:
    """Group timed words into readable cues (see the module docstring)."""
    limits = limits or CueLimits()
    cues: list[Cue] = []
    current: list[Word] = []

    def prefix_len(group: Sequence[Word]) -> int:
        return len(_srt_prefix(group[0].speaker)) if group else 0

    def fits(group: Sequence[Word]) -> bool:
        if group[-1].end - group[0].start > limits.max_duration_s and len(group) > 1:
            return False
        return _wrap(group, limits.max_line_chars, limits.max_lines, prefix_len(group)) is not None

    def emit(group: Sequence[Word]) -> None:
        lines = _wrap(group, limits.max_line_chars, limits.max_lines, prefix_len(group))
        if lines is None:  # one over-long word (fits() lets a single word through)
            lines = [tuple(group)]
        cues.append(
            Cue(group[0].start, group[-1].end, tuple(group), tuple(lines), group[0].speaker)
        )

    for word in words:
        if not word.word.strip():
            continue
        if current:
            previous = current[-1]
            pause = word.start - previous.end >= limits.pause_s
            new_speaker = word.speaker != previous.speaker
            if pause or new_speaker:
                emit(current)
                current = []
            elif not fits([*current, word]):
                # Too long: end the cue after its last clause if that keeps a third of it,
                # else right here; the rest starts the next cue.
                split = len(current)
                for i in range(len(current) - 1, len(current) // 3 - 1, -1):
                    if current[i].word.endswith(_CLAUSE_END):
                        split = i + 1
                        break
                emit(current[:split])
                current = current[split:]
                while current and not fits([*current, word]):
                    emit(current)
                    current = []
        current.append(word)
        if ends_sentence(word.word):
            emit(current)
            current = []
    if current:
        emit(current)
    return _settle_times(cues, limits)


def _settle_times(cues: list[Cue], limits: CueLimits) -> list[Cue]:
    """Cue times in whole milliseconds: each cue starts after the previous one ends, lasts
    at least `min_duration_s` when the next cue allows, and never less than 1 ms."""
    settled: list[Cue] = []
    previous_end = 0
    for index, cue in enumerate(cues):
        start = max(_ms(cue.start), previous_end)
        end = max(_ms(cue.end), start + _ms(limits.min_duration_s))
        if index + 1 < len(cues) and _ms(cues[index + 1].start) > start:
            end = min(end, _ms(cues[index + 1].start))
        end = max(end, start + 1)
        settled.append(Cue(start / 1000, end / 1000, cue.words, cue.lines, cue.speaker))
        previous_end = end
    return settled


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


def timestamp(seconds: float, separator: str = ".") -> str:
    """`HH:MM:SS.mmm` (WebVTT) or with `,` before the milliseconds (SRT)."""
    ms = _ms(seconds)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def _cues(words_or_cues: Iterable[Word] | Sequence[Cue], limits: CueLimits | None) -> list[Cue]:
    items = list(words_or_cues)
    if items and all(isinstance(item, Cue) for item in items):
        return items  # type: ignore[return-value]
    return build_cues(items, limits)  # type: ignore[arg-type]


def to_srt(words: Iterable[Word] | Sequence[Cue], limits: CueLimits | None = None) -> str:
    """SubRip text: numbered cues, `00:00:01,200 --> 00:00:03,400`, plain text lines."""
    blocks = []
    for number, cue in enumerate(_cues(words, limits), start=1):
        lines = [" ".join(w.word for w in line) for line in cue.lines]
        lines[0] = _srt_prefix(cue.speaker) + lines[0]
        span = f"{timestamp(cue.start, ',')} --> {timestamp(cue.end, ',')}"
        blocks.append(f"{number}\n{span}\n" + "\n".join(lines) + "\n")
    return "\n".join(blocks)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_vtt(
    words: Iterable[Word] | Sequence[Cue],
    limits: CueLimits | None = None,
    *,
    word_timing: bool = True,
) -> str:
    """WebVTT text. With `word_timing`, each word after a cue's first is preceded by its
    start as a timestamp tag, strictly inside the cue and increasing (as the format
    requires); a word whose start cannot be placed so shares the previous tag."""
    blocks = ["WEBVTT\n"]
    for number, cue in enumerate(_cues(words, limits), start=1):
        start_ms, end_ms = _ms(cue.start), _ms(cue.end)
        last_tag = start_ms
        lines = []
        first = True
        for line in cue.lines:
            parts = []
            for word in line:
                text = _escape(word.word)
                tag_ms = max(_ms(word.start), last_tag + 1)
                if word_timing and not first and tag_ms < end_ms:
                    parts.append(f"<{timestamp(tag_ms / 1000)}>{text}")
                    last_tag = tag_ms
                else:
                    parts.append(text)
                first = False
            lines.append(" ".join(parts))
        if cue.speaker is not None:
            lines[0] = f"<v {speaker_label(cue.speaker)}>{lines[0]}"
        span = f"{timestamp(cue.start)} --> {timestamp(cue.end)}"
        blocks.append(f"{number}\n{span}\n" + "\n".join(lines) + "\n")
    return "\n".join(blocks)
