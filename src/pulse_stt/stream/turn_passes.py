"""A live stream's decode planning: what each pass decodes, and each pass as the turn's
hypothesis (stream/live.py hands the results out in order).

- A partial decodes the turn's uncommitted tail (stream/stabilizer.py).
- A speculative pass (final quality, at a pause) decodes the audio after the turn's last
  settled pause and settles its words; right after a settled pause it is skipped.
- A final decodes the audio after the last settled pause and is stitched to the settled
  words; when nothing was said since the turn's speculative pass, it reuses that pass.
"""

from __future__ import annotations

import asyncio
import contextlib
from concurrent.futures import Future
from dataclasses import dataclass

from pulse_stt.engine.scheduler import SchedulerClosedError
from pulse_stt.engine.types import DecodeJob, Hypothesis
from pulse_stt.protocol import MODEL_RATE, JobKind, StreamParams
from pulse_stt.stream.live_services import Decoder
from pulse_stt.stream.session import UtteranceAudio
from pulse_stt.stream.stabilizer import PartialRequest, PartialStabilizer
from pulse_stt.text.keywords import hotwords_prompt


@dataclass(frozen=True)
class _Speculation:
    """The open turn's speculative final pass, and what it was asked to decode."""

    utterance: int
    future: Future[Hypothesis | None]
    request: PartialRequest


class TurnPasses:
    """One per stream; call from its event loop, in the order the session asked."""

    def __init__(
        self,
        session_id: str,
        params: StreamParams,
        decoder: Decoder,
        *,
        stitch_finals: bool,
        final_words: bool,
    ) -> None:
        self._session_id = session_id
        self._params = params
        self._decoder = decoder
        self._stitch_finals = stitch_finals
        self._final_words = final_words  # finals need word timings (words[], max_words)
        self._hotwords = hotwords_prompt(params.keywords)
        self._stabilizer = PartialStabilizer()
        self._languages: dict[int, str] = {}  # language detected per turn, for its partials
        self._speculation: _Speculation | None = None

    def heard(self, utterance: int, language: str) -> None:
        """The language a pass of the turn was decoded in (its later partials keep it)."""
        self._languages.setdefault(utterance, language)

    def worth_speculating(self, work: UtteranceAudio) -> bool:
        """A speculative pass right after the turn's last settled pause is skipped; so is
        reusing an earlier one: the final decodes the short stretch since that pause."""
        if not self._stitch_finals:
            return True
        if self._stabilizer.worth_settling(work.utterance, work.audio.size / MODEL_RATE):
            return True
        self._speculation = None
        return False

    def plan(self, work: UtteranceAudio) -> PartialRequest:
        """What a pass decodes: a partial, the turn's uncommitted tail; a final-quality pass
        of a long turn, the audio after its settled words (see stream/stabilizer.py)."""
        if work.kind is JobKind.PARTIAL:
            return self._stabilizer.request(work.utterance)
        if self._stitch_finals:
            return self._stabilizer.final_request(work.utterance, work.audio.size / MODEL_RATE)
        return PartialRequest(0.0, None)

    def decode(
        self, work: UtteranceAudio, request: PartialRequest
    ) -> asyncio.Future[Hypothesis | None] | None:
        """Start the pass; a final's resolves to the whole turn's hypothesis, a partial's
        or speculation's to what it decoded (see `shown`). None: nothing to decode."""
        speculation = self._speculation
        if work.is_final:
            self._speculation = None
        if (
            work.reuses_speculation
            and speculation is not None
            and speculation.utterance == work.utterance
        ):
            return asyncio.ensure_future(self._reuse(speculation, work))
        submitted = self._submit(work, request)
        if submitted is None:
            return None
        if work.speculative:
            self._speculation = _Speculation(work.utterance, submitted, request)
        if work.is_final:
            return asyncio.ensure_future(self._stitched(submitted, request))
        return asyncio.wrap_future(submitted)

    def shown(self, work: UtteranceAudio, hyp: Hypothesis, request: PartialRequest) -> Hypothesis:
        """A partial or speculative pass as the partial to show; a speculative one (final
        quality) settles the words it decoded."""
        if work.speculative and not hyp.provisional:
            whole = self._stabilizer.stitch(request, hyp)
            return self._stabilizer.settle(work.utterance, whole, work.audio.size / MODEL_RATE)
        return self._stabilizer.update(work.utterance, hyp, request.start_s)

    async def _stitched(
        self, submitted: Future[Hypothesis | None], request: PartialRequest
    ) -> Hypothesis | None:
        hyp = await asyncio.wrap_future(submitted)
        return None if hyp is None else self._stabilizer.stitch(request, hyp)

    async def _reuse(self, speculation: _Speculation, work: UtteranceAudio) -> Hypothesis | None:
        """The final of a turn that ended without speech since its speculative pass."""
        self._decoder.promote(speculation.future)  # owed now: ahead of partials
        full_window = False
        with contextlib.suppress(Exception):
            hyp = await asyncio.wrap_future(speculation.future)
            if hyp is not None and not hyp.provisional:
                return self._stabilizer.stitch(speculation.request, hyp)
            full_window = hyp is not None  # its short window was bad: the full one now
        # The speculation was dropped or failed: decode the final now.
        submitted = self._submit(work, speculation.request, full_window=full_window)
        if submitted is None:
            return Hypothesis("")
        return await self._stitched(submitted, speculation.request)

    def _submit(
        self, work: UtteranceAudio, request: PartialRequest, *, full_window: bool = False
    ) -> Future[Hypothesis | None] | None:
        audio = work.audio
        if request.start_s:
            audio = audio[round(request.start_s * MODEL_RATE) :]
        if audio.size == 0:
            return None
        language = self._params.language
        final_pass = work.kind.final_quality
        job = DecodeJob(
            session_id=self._session_id,
            audio=audio,
            kind=work.kind,
            prompt=request.prompt,
            language=language.fixed
            or (None if final_pass else self._languages.get(work.utterance)),
            candidates=language.candidates,
            # Stable partials need word times to know what two passes agree on; a stitched
            # final, to place its words after the settled ones; max_words splits finals
            # (and cuts turns) at word times.
            word_timestamps=self._final_words or not final_pass or bool(request.committed),
            hotwords=self._hotwords,
            full_window=full_window,
        )
        try:
            return self._decoder.submit(job)
        except SchedulerClosedError as exc:
            failed: Future[Hypothesis | None] = Future()
            failed.set_exception(exc)
            return failed
