"""One live stream's transcript, without a socket: audio and control in, the ordered
events its client is owed out.

`LiveStream` feeds a `StreamSession` (off the event loop, one call at a time, in call
order), turns every decode the session asks for into an engine job, and hands the
transport the results strictly in the order they were asked for: finals are never
reordered and a partial never follows the final of its own turn. What it does on the way:
decode planning (stream/turn_passes.py: stable partials, speculative passes that settle a
long turn, finals stitched to the settled words or reusing a speculation),
speaker labels, shaping (ITN, redaction, formatting), `max_words` and the full transcript.

Between the two sides sits an `Outbox` counted in bytes, which bounds the stream's memory:
the transport waits for `room()` before it reads the next frame (see stream/outbox.py).
The transport (api/websocket.py) turns each `LiveEvent` into wire JSON.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from dataclasses import replace
from functools import partial
from typing import Any

from pulse_stt.audio.decode import AudioDecodeError
from pulse_stt.engine.types import Hypothesis
from pulse_stt.protocol import ErrorKind, FinalReason, JobKind, StreamParams
from pulse_stt.speakers.embedder import TurnEmbedder
from pulse_stt.speakers.encoder import TurnWindows
from pulse_stt.speakers.tracker import SpeakerTrack, SpeakerTracker
from pulse_stt.stream.events import (
    ErrorEvent,
    LiveEvent,
    PongEvent,
    TranscriptEvent,
    VadEvent,
    WarningEvent,
)
from pulse_stt.stream.live_items import Closed, Owed, Pending, Ready, retrieve
from pulse_stt.stream.live_services import Decoder as Decoder
from pulse_stt.stream.live_services import LiveConfig, LiveObserver, LiveServices
from pulse_stt.stream.outbox import Outbox, OutboxClosedError
from pulse_stt.stream.session import (
    AudioProblem,
    SessionAction,
    SessionConfig,
    StreamSession,
    UtteranceAudio,
    VadNotice,
)
from pulse_stt.stream.turn_passes import TurnPasses
from pulse_stt.stream.word_limit import Piece, WordLimit
from pulse_stt.text.pipeline import TranscriptShaper

# What the outbox counts for a decode on top of its audio (the message it becomes), and
# for an event ready to send (a VAD event or an error: a few hundred bytes of JSON).
_PENDING_OVERHEAD = 1024
_EVENT_OVERHEAD = 256


class LiveStream:
    """One stream. Call its coroutines from one event loop; `feed`, `finalize` and `close`
    in the order the client sent them, while one task takes `next_events()`."""

    def __init__(
        self,
        session_id: str,
        params: StreamParams,
        services: LiveServices,
        config: LiveConfig | None = None,
        *,
        observer: LiveObserver | None = None,
        log: logging.LoggerAdapter[logging.Logger] | logging.Logger | None = None,
    ) -> None:
        config = config or LiveConfig()
        self.session_id = session_id
        self.params = params
        self._services = services
        self._observer = observer
        self._log = log or logging.getLogger(__name__)
        session_config = SessionConfig(
            encoding=params.encoding,
            sample_rate=params.sample_rate,
            eou_timeout_ms=params.turn_end_ms,
            vad_threshold=config.vad_threshold
            if params.vad_threshold is None
            else params.vad_threshold,
            partial_interval_ms=config.partial_interval_ms,
            max_utterance_s=config.max_utterance_s,
        )
        if params.vad_min_speech_ms is not None:
            session_config = replace(session_config, vad_min_speech_ms=params.vad_min_speech_ms)
        self.session = StreamSession(session_config)
        self._outbox: Outbox[Owed] = Outbox(config.max_backlog_bytes)
        self._session_lock = asyncio.Lock()  # the session is not thread-safe
        self._shaper = TranscriptShaper(params.text, itn=services.itn, keywords=params.keywords)
        self._embedder: TurnEmbedder | None = None
        if params.text.diarize and services.speaker_encoder is not None:
            self._embedder = TurnEmbedder(services.speaker_encoder)
        self._speakers = SpeakerTracker()
        self._words = WordLimit(params.word_limit)  # max_words: splits finals, caps partials
        self._passes = TurnPasses(
            session_id,
            params,
            services.decoder,
            stitch_finals=config.stable_finals,
            # utterances[] need word timings even when words[] is not sent
            final_words=params.text.word_timestamps
            or params.text.sentence_timestamps
            or bool(self._words.limit),
        )
        self._last_language: str | None = None
        self._partial_shown: set[int] = set()
        self._cut_turns: set[int] = set()  # turns that go on from a max_words/max_length cut
        self._full_transcript = ""  # kept only with full_transcript=true
        self._next_turn = 0  # the turn a speech onset belongs to (see `_dispatch`)
        self._shown_passes: list[Pending] = []  # partial/speculative passes not yet decoded
        self._tasks: set[asyncio.Task[None]] = set()

    # -- input ----------------------------------------------------------------------------

    @property
    def audio_seconds(self) -> float:
        return self.session.audio_seconds

    async def room(self) -> bool:
        """Wait while the stream holds more than its backlog limit; False once abandoned."""
        return await self._outbox.room()

    async def feed(self, data: bytes, received_at: float) -> bool:
        """A binary frame, decoded a bounded piece at a time: one frame of Ogg/Opus can hold
        hours of audio. Between pieces other streams get the DSP threads and the outbox
        must have room again. False: abandoned (the client does not read)."""
        while True:
            try:
                actions = await self._call(self.session.feed, data)
            except AudioDecodeError as exc:
                self._post(self._bad_audio(str(exc)))
            else:
                self._audio_received(received_at)
                self._dispatch(actions)
            if not self.session.has_pending_audio:
                return True
            data = b""
            if not await self._outbox.room():
                return False

    async def finalize(self) -> None:
        """The client's turn boundary: exactly one final, `from_finalize`."""
        self._dispatch(await self._call(self.session.finalize))

    async def close(self, received_at: float) -> None:
        """End of stream: the finals of everything received, the last one `is_last`."""
        actions = await self._call(self.session.close)
        self._audio_received(received_at)  # the decoder's tail
        self._dispatch(actions)
        self._outbox.put(Closed(), 0)

    def post_error(self, kind: ErrorKind, message: str) -> None:
        """An error for the client, in order with everything else it is owed."""
        self._post(ErrorEvent(kind, message))

    def post_notice(self, event: PongEvent | WarningEvent) -> None:
        """A pong (keepalive answer) or a warning, in order with everything else."""
        self._post(event)

    def abandon(self) -> None:
        """Nothing more will be delivered (the client is gone or does not read): drop what
        is owed, and wake whoever waits for room."""
        self._outbox.abandon()

    def cancel(self) -> None:
        """Drop the stream's queued model work."""
        self._services.decoder.cancel_session(self.session_id)

    # -- output ---------------------------------------------------------------------------

    async def next_events(self) -> list[LiveEvent] | None:
        """The events of the next thing owed, in order (none when a superseded partial
        turned out to show nothing new); None after the last (or once abandoned)."""
        try:
            item = await self._outbox.get()
        except OutboxClosedError:
            return None
        if isinstance(item, Closed):
            return None
        if isinstance(item, Ready):
            return [item.event]
        return await self._resolve(item)

    # -- internals ------------------------------------------------------------------------

    async def _call(
        self, method: Callable[..., list[SessionAction]], *args: object
    ) -> list[SessionAction]:
        """Run a session method off the event loop; one at a time, in call order."""
        async with self._session_lock:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._services.dsp_pool, method, *args)

    def _audio_received(self, received_at: float) -> None:
        if self._observer is not None:
            self._observer.audio_received(self.session.audio_seconds, received_at)

    def _bad_audio(self, problem: str) -> ErrorEvent:
        return ErrorEvent(
            ErrorKind.BAD_AUDIO, f"could not decode audio as {self.params.encoding}: {problem}"
        )

    def _post(self, event: VadEvent | ErrorEvent | PongEvent | WarningEvent) -> None:
        size = _EVENT_OVERHEAD + len(getattr(event, "message", ""))
        self._outbox.put(Ready(event), size)

    def _dispatch(self, actions: list[SessionAction]) -> None:
        for action in actions:
            if isinstance(action, VadNotice):
                if action.kind == "speech_started" and self._observer is not None:
                    self._observer.speech_started(self._next_turn, action.timestamp)
                if self.params.vad_events:
                    self._post(VadEvent(action.kind, action.timestamp))
                continue
            if isinstance(action, AudioProblem):
                self._post(self._bad_audio(action.message))
                continue
            # Actions come in session order: an onset after a final belongs to the next turn.
            if action.is_final:
                self._next_turn = action.utterance + 1
                if action.reason is not None and not action.reason.ends_turn:
                    self._cut_turns.add(action.utterance + 1)
            if action.speculative and not self._passes.worth_speculating(action):
                continue
            plain_partial = action.kind is JobKind.PARTIAL
            request = self._passes.plan(action)
            decoded = self._passes.decode(action, request)
            pending = Pending(action, decoded, self._embed(action), request)
            self._supersede(pending)
            self._outbox.put(
                pending,
                action.audio.nbytes + _PENDING_OVERHEAD,
                # a newer partial of the turn replaces this one while it waits to be sent
                partial_of=action.utterance if plain_partial else None,
            )

    def _supersede(self, pending: Pending) -> None:
        """The turn's final decodes all its partial and speculative passes do: those still
        decoding are not waited for (in send order the final would wait on them). A
        partial's words still show as soon as its own pass is done (word lag)."""
        if pending.work.is_final:
            for earlier in self._shown_passes:
                if earlier.work.utterance == pending.work.utterance:
                    earlier.superseded.set()
            self._shown_passes = []
        else:
            self._shown_passes = [
                p for p in self._shown_passes if p.result is not None and not p.result.done()
            ]
            self._shown_passes.append(pending)

    async def _result(self, item: Pending) -> Hypothesis | None:
        """The item's pass; None for a partial superseded before its pass was done."""
        if item.result is None:
            return Hypothesis("")
        if item.work.is_final:
            return await item.result
        superseded = asyncio.ensure_future(item.superseded.wait())
        either: set[asyncio.Future[Any]] = {item.result, superseded}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            superseded.cancel()
        if not item.result.done():
            item.result.add_done_callback(retrieve)  # its failure, if any, is nobody's now
            return None
        return item.result.result()

    def _embed(self, work: UtteranceAudio) -> asyncio.Future[TurnWindows] | None:
        """Speaker embeddings of the turn, computed beside its decode."""
        pool = self._services.speaker_pool
        if self._embedder is None or pool is None or work.audio.size == 0:
            return None
        embed = partial(
            self._embedder.embed,
            work.audio,
            work.offset,
            utterance=work.utterance,
            final=work.is_final,
        )
        return asyncio.get_running_loop().run_in_executor(pool, embed)

    async def _speaker_track(self, item: Pending) -> SpeakerTrack | None:
        """Label the turn's voices; in send order, so finals update speakers in turn order."""
        if item.voices is None:
            return None
        try:
            windows = await item.voices
        except Exception as exc:  # the transcript still goes out, without speakers
            self._log.warning("speaker embedding failed: %s", exc)
            return None
        return self._speakers.label(windows, commit=item.work.is_final)

    async def _resolve(self, item: Pending) -> list[LiveEvent]:
        work = item.work
        events: list[LiveEvent] = []
        try:
            hyp = await self._result(item)
        except Exception as exc:
            self._log.warning("decode failed: %s", exc)
            if not work.is_final:
                return []
            # A final is owed to the client even when its pass failed: say so, then send it empty.
            events.append(
                ErrorEvent(
                    ErrorKind.ENGINE_ERROR,
                    "transcription of this turn failed on the server; the turn's final is empty.",
                )
            )
            hyp = Hypothesis("")
        if hyp is None:  # a newer pass replaced this one
            return events
        if hyp.language:
            self._passes.heard(work.utterance, hyp.language)
            self._last_language = hyp.language
        else:  # nothing decoded (empty turn): report the stream's language so far
            hyp = replace(hyp, language=self.params.language.fixed or self._last_language)
        if not work.is_final:
            hyp = self._passes.shown(work, hyp, item.request)
            if hyp.is_empty:
                return events
            self._partial_shown.add(work.utterance)
        elif (
            hyp.is_empty
            and work.reason in (FinalReason.EOU, FinalReason.MAX_LENGTH)
            and work.utterance not in self._partial_shown
            # the empty end of a cut turn is still sent: its speech_final ends the turn
            and not (work.reason is FinalReason.EOU and work.utterance in self._cut_turns)
            and not self._words.carry  # words carried from a cut are owed
        ):
            return events  # non-speech the VAD let through: nothing shown, nothing to retract
        events += await self._transcript_events(item, hyp)
        return events

    async def _transcript_events(self, item: Pending, hyp: Hypothesis) -> list[LiveEvent]:
        """The messages of a decoded pass: one, or with max_words several finals (or none
        while its words are carried into the turn's next final; see stream/word_limit.py)."""
        work = item.work
        speakers = await self._speaker_track(item)
        shape = partial(self._shaper.shape_tokens, hyp, work.offset, final=work.is_final)
        if work.is_final and self._shaper.heavy:  # ITN and redaction stay off the event loop
            loop = asyncio.get_running_loop()
            shaped = await loop.run_in_executor(self._services.dsp_pool, shape)
        else:
            shaped = shape()
        if work.is_final:
            pieces = self._words.final(shaped.tokens, work.reason)
        else:
            shown, cut_at = self._words.partial(shaped.tokens)
            pieces = [Piece(shown, None)]
            if cut_at is not None:  # max_words reached: cut the turn at its Nth word
                self._start(self._word_limit_final(work.utterance, cut_at))
        events: list[LiveEvent] = []
        for piece in pieces:
            whole = len(piece.tokens) == len(shaped.tokens) and piece.tokens == tuple(shaped.tokens)
            transcript = self._shaper.finish(
                shaped, None if whole else piece.tokens, speakers=speakers
            )
            full = None
            if self.params.full_transcript:
                if work.is_final and transcript.text:
                    sep = " " if self._full_transcript else ""
                    self._full_transcript += sep + transcript.text
                full = self._full_transcript
            events.append(
                TranscriptEvent(
                    turn=work.utterance,
                    transcript=transcript,
                    is_final=work.is_final,
                    reason=piece.reason,
                    full_transcript=full,
                    # decoded word times (always for partials): the word-lag metric
                    timed_words=transcript.words if hyp.words else (),
                )
            )
        return events

    def _start(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` beside the stream; a reference is kept until it ends."""
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _word_limit_final(self, utterance: int, at_s: float) -> None:
        """max_words reached on a partial: cut that turn at `at_s` (the end of its Nth
        word), if it is still open."""
        if self.session.closed or self.session.current_utterance != utterance:
            return
        actions = await self._call(self.session.force_final, FinalReason.MAX_WORDS, utterance, at_s)
        self._dispatch(actions)
