"""The post-processing stages between a hypothesis and its wire transcript, in order:

ITN (finals) → keyword snapping → redaction → casing of shouted text → punctuation/casing
switches.

Redaction runs after ITN so that spoken numbers are caught in written form too (it also
reads spoken digits itself, for sessions without ITN). One `TranscriptShaper` per session
or request: it owns the session's redaction numbering. `shape` does it all; a stream that
splits a final into pieces (`max_words`) takes `shape_tokens`, splits, and `finish`es each.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from pulse_stt.engine.types import Hypothesis
from pulse_stt.protocol import Keyword, TextOptions
from pulse_stt.speakers.tracker import SpeakerTrack
from pulse_stt.text.casing import keyword_spellings, sentence_case
from pulse_stt.text.format import REDACTION_TOKEN, Transcript, finish
from pulse_stt.text.itn import NemoInverseNormalizer, apply_itn, covers
from pulse_stt.text.keywords import apply_keywords
from pulse_stt.text.redact import SessionRedactor
from pulse_stt.text.tokens import Token, tokens_from_hypothesis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShapedTokens:
    """A hypothesis after every stage but the formatting switches."""

    tokens: list[Token]
    redacted: tuple[str, ...]  # the redaction tokens used, in order
    language: str | None
    languages: tuple[str, ...]
    timed: bool  # the tokens carry decoded word times


class TranscriptShaper:
    def __init__(
        self,
        options: TextOptions,
        *,
        itn: NemoInverseNormalizer | None,
        keywords: Sequence[Keyword] = (),
    ) -> None:
        self.options = options
        self._keywords = tuple(keywords)
        self._spellings = keyword_spellings(k.phrase for k in self._keywords if k.intensifier > 0)
        # numerals=true asks for digits, which is what ITN writes; format=false turns it off.
        wants_itn = options.itn_normalize or (options.format and options.numerals == "true")
        self._itn = itn if wants_itn else None
        self._redactor = (
            SessionRedactor(entities=options.redact_pii | options.redact_pci)
            if options.redact_pii or options.redact_pci
            else None
        )

    @property
    def heavy(self) -> bool:
        """Whether shaping a final costs enough to keep it off the event loop."""
        return self._itn is not None or self._redactor is not None

    def shape(
        self,
        hyp: Hypothesis,
        offset: float,
        *,
        final: bool,
        speakers: SpeakerTrack | None = None,
    ) -> Transcript:
        return self.finish(self.shape_tokens(hyp, offset, final=final), speakers=speakers)

    def shape_tokens(self, hyp: Hypothesis, offset: float, *, final: bool) -> ShapedTokens:
        tokens = tokens_from_hypothesis(hyp, offset)
        itn = self._itn
        if final and itn is not None and tokens and covers(itn, hyp.language):
            try:
                # numerals=true alone asks for digits: written-form rules for digit runs only
                full = self.options.itn_normalize
                tokens = apply_itn(tokens, hyp.language or "en", itn, full=full)
            except Exception as exc:  # a grammar problem must not cost the client its final
                # The exception's text may quote the transcript: only its type is logged.
                log.warning(
                    "ITN failed for %s (%s), final left in spoken form",
                    hyp.language,
                    type(exc).__name__,
                )
        if self._keywords:
            tokens = apply_keywords(tokens, self._keywords)
        redacted: list[str] = []
        if self._redactor is not None:
            # Partials are redacted too (cheap patterns), numbered without committing.
            tokens, redacted = self._redactor.redact(tokens, commit=final, language=hyp.language)
        if self.options.capitalize:
            tokens = sentence_case(tokens, keep=self._spellings, language=hyp.language)
        languages = hyp.language_candidates or ((hyp.language,) if hyp.language else ())
        return ShapedTokens(tokens, tuple(redacted), hyp.language, languages, bool(hyp.words))

    def finish(
        self,
        shaped: ShapedTokens,
        tokens: Sequence[Token] | None = None,
        *,
        speakers: SpeakerTrack | None = None,
    ) -> Transcript:
        """The transcript of `shaped`, or of `tokens` (a piece of it, maybe with words
        carried from an earlier final)."""
        redacted = shaped.redacted
        if tokens is None:
            tokens = shaped.tokens
        elif self._redactor is not None:
            found = (label for t in tokens for label in REDACTION_TOKEN.findall(t.text))
            redacted = tuple(dict.fromkeys(found))
        return finish(
            tokens,
            self.options,
            language=shaped.language,
            languages=shaped.languages,
            redacted_entities=redacted,
            timed=shaped.timed,
            speakers=speakers,
        )
