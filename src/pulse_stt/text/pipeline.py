"""The post-processing stages between a hypothesis and its wire transcript, in order:

ITN (finals) → keyword snapping → redaction → punctuation/casing switches.

Redaction runs after ITN so that spoken numbers are caught in written form too (it also
reads spoken digits itself, for sessions without ITN). One `TranscriptShaper` per session
or request: it owns the session's redaction numbering.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from pulse_stt.engine.types import Hypothesis
from pulse_stt.protocol import Keyword, TextOptions
from pulse_stt.speakers.tracker import SpeakerTrack
from pulse_stt.text.format import Transcript, finish
from pulse_stt.text.itn import NemoInverseNormalizer, apply_itn
from pulse_stt.text.keywords import apply_keywords
from pulse_stt.text.redact import SessionRedactor
from pulse_stt.text.tokens import tokens_from_hypothesis

log = logging.getLogger(__name__)


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
        tokens = tokens_from_hypothesis(hyp, offset)
        if final and self._itn is not None and self._itn.supports(hyp.language) and tokens:
            try:
                tokens = apply_itn(tokens, hyp.language or "en", self._itn)
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
        languages = hyp.language_candidates or ((hyp.language,) if hyp.language else ())
        return finish(
            tokens,
            self.options,
            language=hyp.language,
            languages=languages,
            redacted_entities=tuple(redacted),
            timed=bool(hyp.words),
            speakers=speakers,
        )
