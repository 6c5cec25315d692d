"""Stable partials: LocalAgreement over a turn's successive partial passes.

A word that two consecutive passes agree on (same words from the committed point on) is
committed: later partials of the turn do not revise it (only a final-quality pass does,
below), only the tail after it may change.
Once enough is committed, a partial pass decodes only the audio after the last committed
word, with the committed text as the decoder's prompt, so a long turn's partials cost
what its unsettled tail costs, not what the whole turn costs.

Speculative passes (final quality, at each pause in the speech) chain: each one's words
are committed as *settled* up to the pause it ended at (`settle`), and the next
speculative pass, and the turn's final, decode only the audio after that pause, with the
settled text as the prompt (`final_request`, `stitch`). A long turn's final then costs
what its last stretch costs, not the whole turn, and the final repeats the words the
client already saw from those passes instead of taking them back at the turn's end.
Greedy partials never settle anything: on hard audio (two voices, a phone line) what two
greedy passes agree on is measurably less accurate than a final-quality pass.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from pulse_stt.engine.types import Hypothesis, Word
from pulse_stt.text.tokens import tokens_from_hypothesis

# Committed audio after which partials decode only the rest. Measured with 8 and 12
# concurrent streams: 3 s → 1 s cut word lag p95 from ~1.55 s to ~1.12 s (8 streams) with
# no change in finals (they decode the whole turn).
TRIM_AFTER_S = 1.0
# Settled audio from which a final decodes only the rest (see the module docstring).
STITCH_AFTER_S = 2.0
# Once a turn has settled words, a pause settles again only after this much more audio:
# each speculative pass encodes a whole (15 s) window however short its stretch, so one
# at every short pause of continuous speech costs more than it saves.
RESETTLE_AFTER_S = 3.0
PROMPT_WORDS = 24  # committed words handed to the decoder as context
_OVERLAP_S = 0.1  # a new word starting this close before the committed end is a repeat
_NO_SPACE_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "my", "yue", "bo"})


def _norm(text: str) -> str:
    return re.sub(r"[^\w']", "", text.lower())


@dataclass(frozen=True)
class PartialRequest:
    """What the next partial pass of the turn should decode."""

    start_s: float  # seconds into the turn's audio where the pass starts
    prompt: str | None  # committed text before that point
    # For a final-quality pass: the settled words it keeps before `start_s`.
    committed: tuple[Word, ...] = ()


class PartialStabilizer:
    """One per session; follows the open turn (a new utterance number starts afresh)."""

    def __init__(self) -> None:
        self._utterance = -1
        self._committed: list[Word] = []  # times relative to the turn's start
        self._tail: list[Word] = []  # the last pass's words after the committed ones
        self._settled = 0  # the first committed words, from final-quality passes
        self._settled_end = 0.0  # the pause where the last of those passes ended

    def _follow(self, utterance: int) -> None:
        if utterance != self._utterance:
            self._utterance = utterance
            self._committed = []
            self._tail = []
            self._settled = 0
            self._settled_end = 0.0

    @property
    def committed_end(self) -> float:
        return self._committed[-1].end if self._committed else 0.0

    def request(self, utterance: int) -> PartialRequest:
        self._follow(utterance)
        if self.committed_end < TRIM_AFTER_S:
            return PartialRequest(0.0, None)
        prompt = " ".join(w.text for w in self._committed[-PROMPT_WORDS:])
        return PartialRequest(self.committed_end, prompt)

    def final_request(self, utterance: int, audio_s: float) -> PartialRequest:
        """What a final-quality pass over the turn's first `audio_s` seconds decodes: the
        whole turn, or (a long one) only the audio after its settled words."""
        self._follow(utterance)
        settled = tuple(self._committed[: self._settled])
        if not settled or not STITCH_AFTER_S <= self._settled_end <= audio_s:
            return PartialRequest(0.0, None)
        prompt = " ".join(w.text for w in settled[-PROMPT_WORDS:])
        return PartialRequest(self._settled_end, prompt, settled)

    def worth_settling(self, utterance: int, audio_s: float) -> bool:
        """Whether a speculative pass over the turn's first `audio_s` seconds is worth its
        cost: always before the turn has settled words, then once `RESETTLE_AFTER_S` more
        audio has come."""
        self._follow(utterance)
        settled = self._settled and self._settled_end >= STITCH_AFTER_S
        return not settled or audio_s - self._settled_end >= RESETTLE_AFTER_S

    def settle(self, utterance: int, whole: Hypothesis, end_s: float) -> Hypothesis:
        """A final-quality pass over the turn's first `end_s` seconds (stitched: see
        `stitch`) settles its words; returns the partial to show."""
        self._follow(utterance)
        if not whole.words or end_s <= self._settled_end:
            return self._shown(whole, self._committed + self._tail)
        self._committed = list(whole.words)
        self._tail = []
        self._settled = len(self._committed)
        self._settled_end = end_s
        return self._shown(whole, self._committed)

    def stitch(self, request: PartialRequest, hyp: Hypothesis) -> Hypothesis:
        """A final-quality pass made for `request` as the whole turn's hypothesis: the
        committed words, then the pass's words after them (times relative to the turn)."""
        if not request.committed:
            return hyp
        new = [
            replace(
                w, start=round(w.start + request.start_s, 3), end=round(w.end + request.start_s, 3)
            )
            for w in _written_words(hyp)
        ]
        # No repeated head is dropped here, unlike partials: the pass starts in a pause,
        # after the settled words, so words it hears again were said again ("yes. yes").
        new = [w for w in new if w.start >= request.start_s - _OVERLAP_S]
        return self._shown(hyp, request.committed + tuple(new))

    def update(self, utterance: int, hyp: Hypothesis, start_s: float) -> Hypothesis:
        """Merge a partial pass (words relative to `start_s`); returns the partial to show."""
        self._follow(utterance)
        if not hyp.words:
            # Nothing heard (or a guarded loop): nothing new to show, and no agreement.
            return Hypothesis("", (), hyp.language, hyp.language_candidates)
        boundary = self.committed_end - _OVERLAP_S
        new = [
            replace(w, start=round(w.start + start_s, 3), end=round(w.end + start_s, 3))
            for w in _written_words(hyp)
        ]
        if self._committed:
            new = [w for w in new if w.start >= boundary]
        if start_s > 0:
            new = _without_repeated_head(self._committed, new)
        agreed = 0
        for previous, current in zip(self._tail, new, strict=False):
            if _norm(previous.text) != _norm(current.text):
                break
            agreed += 1
        self._committed += new[:agreed]
        self._tail = new[agreed:]
        return self._shown(hyp, self._committed + self._tail)

    @staticmethod
    def _shown(hyp: Hypothesis, words: Sequence[Word]) -> Hypothesis:
        separator = "" if hyp.language in _NO_SPACE_LANGUAGES else " "
        text = separator.join(w.text for w in words)
        return Hypothesis(text, tuple(words), hyp.language, hyp.language_candidates)


def _written_words(hyp: Hypothesis) -> list[Word]:
    """The pass's words as written: Whisper splits "ill-disposed" into "ill" and
    "-disposed" with no space between them in its text; those are one word here, so that
    joining words with spaces gives back the text, as the transcript's tokens do (languages
    written without spaces keep Whisper's words)."""
    if hyp.language in _NO_SPACE_LANGUAGES:
        return list(hyp.words)
    return [Word(t.text, t.start, t.end, t.confidence) for t in tokens_from_hypothesis(hyp, 0.0)]


def _without_repeated_head(committed: Sequence[Word], new: list[Word]) -> list[Word]:
    """A pass that starts at the committed end may say its last words again (the prompt
    ends with them)."""
    said = [_norm(w.text) for w in committed]
    for n in range(min(5, len(said), len(new)), 0, -1):
        if said[-n:] == [_norm(w.text) for w in new[:n]]:
            return new[n:]
    return new
