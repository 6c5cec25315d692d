"""The streaming WebSocket endpoint: one `StreamRunner` per connection.

The receive loop feeds audio and control messages to the session (off the event loop,
in order); every decode the session asks for becomes an engine job; the send loop
delivers results strictly in the order they were asked for, so finals are never
reordered and a partial never follows the final of its own turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from starlette.responses import JSONResponse
from starlette.websockets import WebSocket, WebSocketDisconnect

from pulse_stt.api.auth import UNAUTHORIZED_BODY, accepted_subprotocol, authenticate
from pulse_stt.api.context import ServerContext
from pulse_stt.api.control import Control, ControlError, parse_control
from pulse_stt.api.params import ParamError, StreamParams, parse_stream_params
from pulse_stt.api.schemas import error_message, transcription_message, vad_message
from pulse_stt.audio.decode import AudioDecodeError
from pulse_stt.audio.resample import MODEL_RATE
from pulse_stt.engine.scheduler import SchedulerClosedError
from pulse_stt.engine.types import DecodeJob, Hypothesis
from pulse_stt.ops.logs import ContextLogger
from pulse_stt.ops.metrics import StreamMetrics
from pulse_stt.speakers.embedder import TurnEmbedder
from pulse_stt.speakers.encoder import TurnWindows
from pulse_stt.speakers.tracker import SpeakerTrack, SpeakerTracker
from pulse_stt.store.db import ApiKey
from pulse_stt.stream.session import (
    AudioProblem,
    SessionAction,
    SessionConfig,
    StreamSession,
    UtteranceAudio,
    VadNotice,
)
from pulse_stt.stream.stabilizer import PartialRequest, PartialStabilizer
from pulse_stt.text.format import TimedWord
from pulse_stt.text.keywords import hotwords_prompt
from pulse_stt.text.pipeline import TranscriptShaper

log = logging.getLogger(__name__)

LEGACY_PATH = "/waves/v1/pulse/get_text"
LIVE_PATH = "/waves/v1/stt/live"


async def stream_endpoint(websocket: WebSocket) -> None:
    ctx: ServerContext = websocket.app.state.ctx
    legacy = websocket.url.path.rstrip("/") == LEGACY_PATH
    key = await authenticate(ctx.store, websocket)
    if key is None:
        ctx.metrics.error("unauthorized")
        await websocket.send_denial_response(JSONResponse(UNAUTHORIZED_BODY, status_code=401))
        return
    try:
        params = parse_stream_params(websocket.query_params, legacy_path=legacy)
        ctx.check_diarize(params.text.diarize)
    except ParamError as exc:
        ctx.metrics.error("invalid_parameter")
        await websocket.send_denial_response(JSONResponse(exc.to_json(), status_code=400))
        return
    await websocket.accept(subprotocol=accepted_subprotocol(websocket))
    runner = StreamRunner(ctx, websocket, params, key, LEGACY_PATH if legacy else LIVE_PATH)
    await runner.run()


@dataclass
class _Ready:
    message: dict[str, Any]


@dataclass
class _Pending:
    work: UtteranceAudio
    result: asyncio.Future[Hypothesis | None] | None  # None: nothing to decode
    voices: asyncio.Future[TurnWindows] | None = None  # speaker embeddings (diarize=true)
    start_s: float = 0.0  # where in the turn's audio a (stable) partial pass started
    # Words of the message sent, when they carry decoded times (for the word-lag metric).
    timed_words: tuple[TimedWord, ...] = ()


_CLOSE = object()
# What sending or receiving raises once the client is gone (Starlette raises RuntimeError
# for a send after the close handshake).
_CLIENT_GONE = (WebSocketDisconnect, ConnectionError, RuntimeError)


def _unexpected_failure(task: asyncio.Task[None]) -> BaseException | None:
    """The exception a finished task died of, unless it is just the client going away."""
    if task.cancelled():
        return None
    failure = task.exception()
    return None if failure is None or isinstance(failure, _CLIENT_GONE) else failure


class StreamRunner:
    def __init__(
        self,
        ctx: ServerContext,
        websocket: WebSocket,
        params: StreamParams,
        key: ApiKey,
        endpoint: str,
    ) -> None:
        self.ctx = ctx
        self.ws = websocket
        self.params = params
        self.key = key
        self.endpoint = endpoint
        self.session_id = str(uuid.uuid4())
        self.started_at = datetime.now(UTC)
        self.session = StreamSession(
            SessionConfig(
                encoding=params.encoding,
                sample_rate=params.sample_rate,
                eou_timeout_ms=params.eou_timeout_ms,
                vad_threshold=ctx.settings.vad_threshold,
                partial_interval_ms=ctx.settings.partial_interval_ms,
                max_utterance_s=ctx.settings.max_utterance_s,
            )
        )
        self._outbox: asyncio.Queue[_Ready | _Pending | object] = asyncio.Queue()
        self._languages: dict[int, str] = {}  # language detected per turn, reused by its partials
        self._last_language: str | None = None
        self._partial_shown: set[int] = set()
        self._finals: list[str] = []
        self._session_lock = asyncio.Lock()  # the session is not thread-safe
        self._shaper = TranscriptShaper(params.text, itn=ctx.itn, keywords=params.keywords)
        self._hotwords = hotwords_prompt(params.keywords)
        self._embedder: TurnEmbedder | None = None
        self._speakers = SpeakerTracker()
        if params.text.diarize and ctx.speaker_encoder is not None:
            self._embedder = TurnEmbedder(ctx.speaker_encoder)
        self._tasks: set[asyncio.Task[None]] = set()
        # The open turn's speculative final pass: (utterance, its engine future).
        self._speculation: tuple[int, Future[Hypothesis | None]] | None = None
        self._stabilizer = PartialStabilizer()
        # Word timings are needed for utterances[] even when words[] is not sent.
        self._want_words = params.text.word_timestamps or params.text.sentence_timestamps
        self._log = ContextLogger(log, {"session_id": self.session_id})
        self._next_turn = 0  # the turn a speech onset belongs to (see `_dispatch`)
        self._close_code: int | None = None
        self._close_reason = "client_disconnected"
        self._ops: StreamMetrics = ctx.metrics.stream_session(
            "legacy" if endpoint == LEGACY_PATH else "live"
        )

    async def run(self) -> None:
        self._log_start()
        sender = asyncio.create_task(self._send_loop())
        try:
            if await self._receive_loop(sender):
                await sender
                await self.ws.close(code=1000)
                self._close_code = 1000
        except _CLIENT_GONE:
            pass  # nothing more can be delivered
        except Exception:
            self._log.exception("session failed")
            await self._close_quietly(1011)
        finally:
            if not sender.done():
                sender.cancel()
            elif (failure := _unexpected_failure(sender)) is not None:
                self._log.error("send loop failed", exc_info=failure)
                await self._close_quietly(1011)
            self.ctx.engine.cancel_session(self.session_id)
            self._ops.ended()
            self._log_end()
            await self._record_usage()

    def _log_start(self) -> None:
        params = self.params
        self._log.info(
            "session started",
            extra={
                "endpoint": self.endpoint,
                "key_id": self.key.id,
                "encoding": params.encoding,
                "sample_rate": params.sample_rate,
                "language": params.language.requested,
                "external_session_id": params.external_session_id,
            },
        )

    def _log_end(self) -> None:
        self._log.info(
            "session ended",
            extra={
                "duration_s": round((datetime.now(UTC) - self.started_at).total_seconds(), 3),
                "audio_s": round(self.session.audio_seconds, 3),
                "finals": self._ops.finals_sent,
                "messages": self._ops.messages_sent,
                "close_code": self._close_code,
                "close_reason": self._close_reason,
            },
        )

    async def _close_quietly(self, code: int) -> None:
        self._close_code, self._close_reason = code, "server_error"
        self.ctx.metrics.error("internal")
        with contextlib.suppress(*_CLIENT_GONE):
            await self.ws.close(code=code)

    async def _receive_loop(self, sender: asyncio.Task[None]) -> bool:
        """Returns True after close_stream (the send loop then finishes and we close)."""
        idle_timeout = self.ctx.settings.idle_timeout_s
        while True:
            try:
                message = await asyncio.wait_for(self.ws.receive(), idle_timeout)
            except TimeoutError:
                # Neither audio nor a control message for a while: end the session as
                # close_stream would, so the client still gets its finals and is_last.
                self._log.info("idle for %gs, closing", idle_timeout)
                self._close_reason = "idle_timeout"
                message = {"type": "websocket.receive", "text": '{"type":"close_stream"}'}
            received_at = self._ops.now()  # the clock the send-side latencies use
            if message["type"] == "websocket.disconnect":
                self._client_closed(message.get("code"))
                return False
            if sender.done():  # the send side failed: the client is gone
                return False
            data = message.get("bytes")
            if data is not None:
                try:
                    actions = await self._call(self.session.feed, data)
                except AudioDecodeError as exc:
                    self._post(self._bad_audio(str(exc)))
                    continue
                self._ops.audio_received(self.session.audio_seconds, received_at)
                self._dispatch(actions)
                continue
            try:
                control = parse_control(message.get("text") or "")
            except ControlError as exc:
                self._post(error_message(str(exc), error="bad_message", session_id=self.session_id))
                continue
            if control is Control.FINALIZE:
                self._ops.finalize_requested(received_at)
                self._dispatch(await self._call(self.session.finalize))
            else:
                if self._close_reason != "idle_timeout":
                    self._close_reason = "close_stream"
                actions = await self._call(self.session.close)
                self._ops.audio_received(self.session.audio_seconds, received_at)  # the tail
                self._dispatch(actions)
                self._outbox.put_nowait(_CLOSE)
                return True

    def _client_closed(self, code: int | None) -> None:
        self._close_code = code
        if code == 1009:  # uvicorn closed it: a frame over max_frame_bytes
            self._close_reason = "frame_too_large"
            self.ctx.metrics.error("too_large")

    async def _call(
        self, method: Callable[..., list[SessionAction]], *args: Any
    ) -> list[SessionAction]:
        """Run a session method off the event loop; one at a time, in call order."""
        async with self._session_lock:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.ctx.dsp_pool, method, *args)

    async def _word_limit_final(self, utterance: int) -> None:
        """max_words reached on a partial: end that turn now, if it is still open."""
        if self.session.closed or self.session.current_utterance != utterance:
            return
        actions = await self._call(self.session.force_final, "max_words", utterance)
        self._dispatch(actions)

    def _bad_audio(self, problem: str) -> dict[str, Any]:
        return error_message(
            f"could not decode audio as {self.params.encoding}: {problem}",
            error="bad_audio",
            session_id=self.session_id,
        )

    def _post(self, message: dict[str, Any]) -> None:
        self._outbox.put_nowait(_Ready(message))

    def _dispatch(self, actions: list[SessionAction]) -> None:
        for action in actions:
            # Actions come in session order: an onset after a final belongs to the next turn.
            if isinstance(action, UtteranceAudio) and action.is_final:
                self._next_turn = action.utterance + 1
            elif isinstance(action, VadNotice) and action.kind == "speech_started":
                self._ops.speech_started(self._next_turn, action.timestamp)
            if isinstance(action, VadNotice):
                if self.params.vad_events:
                    self._post(vad_message(action.kind, self.session_id, action.timestamp))
                continue
            if isinstance(action, AudioProblem):
                self._post(self._bad_audio(action.message))
                continue
            request = PartialRequest(0.0, None)
            if not action.is_final and not action.speculative:
                request = self._stabilizer.request(action.utterance)
            self._outbox.put_nowait(
                _Pending(
                    action,
                    self._decode(action, request),
                    self._embed(action),
                    request.start_s,
                )
            )

    def _decode(
        self, work: UtteranceAudio, request: PartialRequest
    ) -> asyncio.Future[Hypothesis | None] | None:
        speculation = self._speculation
        if work.is_final:
            self._speculation = None
        if work.reuses_speculation and speculation is not None and speculation[0] == work.utterance:
            return asyncio.ensure_future(self._reuse(speculation[1], work))
        submitted = self._submit(work, request)
        if submitted is None:
            return None
        if work.speculative:
            self._speculation = (work.utterance, submitted)
        return asyncio.wrap_future(submitted)

    async def _reuse(
        self, speculation: Future[Hypothesis | None], work: UtteranceAudio
    ) -> Hypothesis | None:
        """The final of a turn that ended without speech since its speculative pass."""
        self.ctx.engine.promote(speculation)  # owed now: ahead of partials
        with contextlib.suppress(Exception):
            hyp = await asyncio.wrap_future(speculation)
            if hyp is not None:
                return hyp
        # The speculation was dropped or failed: decode the final now.
        submitted = self._submit(work)
        return await asyncio.wrap_future(submitted) if submitted is not None else Hypothesis("")

    def _embed(self, work: UtteranceAudio) -> asyncio.Future[TurnWindows] | None:
        """Speaker embeddings of the turn, computed beside its decode."""
        if self._embedder is None or work.audio.size == 0:
            return None
        embed = partial(
            self._embedder.embed,
            work.audio,
            work.offset,
            utterance=work.utterance,
            final=work.is_final,
        )
        return asyncio.get_running_loop().run_in_executor(self.ctx.speaker_pool, embed)

    async def _speaker_track(self, item: _Pending) -> SpeakerTrack | None:
        """Label the turn's voices; in send order, so finals update speakers in turn order."""
        if item.voices is None:
            return None
        try:
            windows = await item.voices
        except Exception as exc:  # the transcript still goes out, without speakers
            self._log.warning("speaker embedding failed: %s", exc)
            return None
        return self._speakers.label(windows, commit=item.work.is_final)

    def _submit(
        self, work: UtteranceAudio, request: PartialRequest | None = None
    ) -> Future[Hypothesis | None] | None:
        audio = work.audio
        if request is not None and request.start_s:
            audio = audio[round(request.start_s * MODEL_RATE) :]
        if audio.size == 0:
            return None
        language = self.params.language
        final_pass = work.is_final or work.speculative
        job = DecodeJob(
            session_id=self.session_id,
            audio=audio,
            prompt=request.prompt if request is not None else None,
            is_final=final_pass,
            speculative=work.speculative,
            language=language.fixed
            or (None if final_pass else self._languages.get(work.utterance)),
            candidates=language.candidates,
            # Stable partials need word times to know what two passes agree on.
            word_timestamps=self._want_words or not final_pass,
            hotwords=self._hotwords,
        )
        try:
            return self.ctx.engine.submit(job)
        except SchedulerClosedError as exc:
            failed: Future[Hypothesis | None] = Future()
            failed.set_exception(exc)
            return failed

    async def _send_loop(self) -> None:
        while (item := await self._outbox.get()) is not _CLOSE:
            if isinstance(item, _Ready):
                await self.ws.send_json(item.message)
                self._sent(item.message)
            elif isinstance(item, _Pending):
                message = await self._resolve(item)
                if message is not None:
                    await self.ws.send_json(message)
                    self._sent(message, item)

    def _sent(self, message: dict[str, Any], item: _Pending | None = None) -> None:
        """Metrics (and, when the operator asked for it, the transcript log) of a sent message."""
        if message["type"] == "error":
            self._ops.error_sent(message["error"])
        elif item is None:
            self._ops.vad_sent()
        else:
            work = item.work
            self._ops.transcription_sent(
                turn=work.utterance,
                is_final=work.is_final,
                reason=work.reason,
                has_text=bool(message["transcript"]),
                words=item.timed_words,
            )
            if work.is_final and self.ctx.settings.log_transcripts:
                self._log.info(
                    "final",
                    extra={
                        "turn": work.utterance,
                        "reason": work.reason,
                        "transcript": message["transcript"],
                    },
                )

    async def _resolve(self, item: _Pending) -> dict[str, Any] | None:
        work = item.work
        try:
            hyp = await item.result if item.result is not None else Hypothesis("")
        except Exception as exc:
            self._log.warning("decode failed: %s", exc)
            if not work.is_final:
                return None
            # A final is owed to the client even when its pass failed: say so, then send it empty.
            failed = error_message(
                "transcription of this turn failed on the server; the turn's final is empty.",
                error="engine_error",
                session_id=self.session_id,
            )
            await self.ws.send_json(failed)
            self._sent(failed)
            hyp = Hypothesis("")
        if hyp is None:  # a newer partial replaced this one
            return None
        if hyp.language:
            self._languages.setdefault(work.utterance, hyp.language)
            self._last_language = hyp.language
        else:  # nothing decoded (empty turn): report the session's language so far
            hyp = replace(hyp, language=self.params.language.fixed or self._last_language)
        if not work.is_final:
            hyp = self._stabilizer.update(work.utterance, hyp, item.start_s)
            if hyp.is_empty:
                return None
            self._partial_shown.add(work.utterance)
            limit = self.params.max_words if self.params.finalize_on_words else None
            if limit and len(hyp.text.split()) >= limit:
                self._tasks.add(task := asyncio.create_task(self._word_limit_final(work.utterance)))
                task.add_done_callback(self._tasks.discard)
        elif (
            hyp.is_empty
            and work.reason in ("eou", "max_length")
            and work.utterance not in self._partial_shown
        ):
            return None  # non-speech the VAD let through: nothing was shown, nothing to retract
        speakers = await self._speaker_track(item)
        if work.is_final and self._shaper.heavy:  # ITN and redaction stay off the event loop
            shape = partial(self._shaper.shape, hyp, work.offset, final=True, speakers=speakers)
            transcript = await asyncio.get_running_loop().run_in_executor(self.ctx.dsp_pool, shape)
        else:
            transcript = self._shaper.shape(
                hyp, work.offset, final=work.is_final, speakers=speakers
            )
        if hyp.words:  # decoded word times (always for partials): the word-lag metric
            item.timed_words = transcript.words
        full = None
        if work.is_final and transcript.text:
            self._finals.append(transcript.text)
        if self.params.full_transcript:
            full = " ".join(self._finals)
        return transcription_message(
            session_id=self.session_id,
            transcript=transcript,
            options=self.params.text,
            is_final=work.is_final,
            is_last=work.is_last,
            from_finalize=work.from_finalize,
            full_transcript=full,
        )

    async def _record_usage(self) -> None:
        try:
            await asyncio.to_thread(
                self.ctx.store.record_usage,
                key_id=self.key.id,
                session_id=self.session_id,
                endpoint=self.endpoint,
                audio_seconds=self.session.audio_seconds,
                started_at=self.started_at,
                external_session_id=self.params.external_session_id,
            )
        except Exception:
            self._log.exception("could not record usage")
