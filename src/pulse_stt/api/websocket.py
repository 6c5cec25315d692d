"""The streaming WebSocket endpoint: one `StreamRunner` per connection.

The receive loop feeds audio and control messages to the session (off the event loop,
in order); every decode the session asks for becomes an engine job; the send loop
delivers results strictly in the order they were asked for, so finals are never
reordered and a partial never follows the final of its own turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from pulse_stt.api.admission import Refusal
from pulse_stt.api.auth import UNAUTHORIZED_BODY, accepted_subprotocol, authenticate
from pulse_stt.api.context import ServerContext
from pulse_stt.api.control import HINT, Control, ControlError, parse_control
from pulse_stt.api.outbox import Outbox
from pulse_stt.api.params import ParamError, StreamParams, parse_stream_params
from pulse_stt.api.schemas import error_message, transcription_message, vad_message
from pulse_stt.api.shutdown import unavailable_response
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


@dataclass(frozen=True)
class HandshakeDenial:
    """Why a WebSocket handshake is refused before the upgrade."""

    response: JSONResponse
    error: str  # the kind `pulse_stt_errors_total` counts


def is_legacy_path(conn: HTTPConnection) -> bool:
    return conn.url.path.rstrip("/") == LEGACY_PATH


async def check_handshake(
    ctx: ServerContext, conn: HTTPConnection
) -> tuple[ApiKey, StreamParams] | HandshakeDenial:
    """The checks before a WebSocket upgrade, in order: draining, credentials, parameters.
    Shared with the browser page's handshake probe (api/browser.py)."""
    if ctx.drain.draining:  # shutting down: no new sessions
        return HandshakeDenial(unavailable_response(), "unavailable")
    key = await authenticate(ctx.store, conn)
    if key is None:
        return HandshakeDenial(JSONResponse(UNAUTHORIZED_BODY, status_code=401), "unauthorized")
    try:
        params = parse_stream_params(conn.query_params, legacy_path=is_legacy_path(conn))
        ctx.check_diarize(params.text.diarize)
    except ParamError as exc:
        return HandshakeDenial(JSONResponse(exc.to_json(), status_code=400), "invalid_parameter")
    return key, params


async def stream_endpoint(websocket: WebSocket) -> None:
    ctx: ServerContext = websocket.app.state.ctx
    checked = await check_handshake(ctx, websocket)
    if isinstance(checked, HandshakeDenial):
        ctx.metrics.error(checked.error)
        await websocket.send_denial_response(checked.response)
        return
    key, params = checked
    admitted = ctx.admission.admit(key.id, ctx.engine)
    if isinstance(admitted, Refusal):
        ctx.metrics.error(admitted.error)
        with contextlib.suppress(*_CLIENT_GONE):
            await admitted.refuse_stream(websocket, accepted_subprotocol(websocket))
        return
    with admitted:  # the session's slot (per key and per server), held until it ends
        await websocket.accept(subprotocol=accepted_subprotocol(websocket))
        path = LEGACY_PATH if is_legacy_path(websocket) else LIVE_PATH
        runner = StreamRunner(ctx, websocket, params, key, path)
        await runner.run()


@dataclass
class _Ready:
    message: dict[str, Any]
    text: str  # the message as sent (its length is what the outbox counts)


@dataclass
class _Pending:
    work: UtteranceAudio
    result: asyncio.Future[Hypothesis | None] | None  # None: nothing to decode
    voices: asyncio.Future[TurnWindows] | None = None  # speaker embeddings (diarize=true)
    start_s: float = 0.0  # where in the turn's audio a (stable) partial pass started
    # Words of the message sent, when they carry decoded times (for the word-lag metric).
    timed_words: tuple[TimedWord, ...] = ()


_CLOSE = object()
# What the outbox counts for a decode on top of its audio: the message it becomes.
_PENDING_OVERHEAD = 1024


class SlowReaderError(Exception):
    """The client took nothing the server sent for send_timeout_s: it is not reading."""


class _TextFrameTooLargeError(ValueError):
    pass


def _encode(message: dict[str, Any]) -> str:
    """A message as Starlette's send_json writes it."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _utf8_size_over(text: str, limit: int) -> bool:
    return len(text) > limit or (not text.isascii() and len(text.encode()) > limit)


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
        # What the client is owed, in order; its size bounds the session's memory (see outbox).
        self._outbox: Outbox[_Ready | _Pending | object] = Outbox(
            ctx.settings.max_send_backlog_bytes
        )
        self._deadline = time.monotonic() + ctx.settings.max_session_s  # max_session_s
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
        # Set by `drain()` when the server shuts down (created in `run`, on the loop).
        self._drain_requested: asyncio.Future[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._aborted = False  # the shutdown grace period ran out
        self._ops: StreamMetrics = ctx.metrics.stream_session(
            "legacy" if endpoint == LEGACY_PATH else "live"
        )

    async def run(self) -> None:
        self._log_start()
        self._drain_requested = asyncio.get_running_loop().create_future()
        self.ctx.drain.add(self)
        sender = self._sender = asyncio.create_task(self._send_loop())
        try:
            if await self._receive_loop(sender):
                await self._finish(sender)
        except SlowReaderError:  # everything was sent but the client never took the close
            await self._close_slow_reader()
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
            if self._aborted and self._close_code is None:
                self._close_code, self._close_reason = 1001, "shutdown_deadline"
                with contextlib.suppress(TimeoutError, *_CLIENT_GONE):  # may not be reading
                    await asyncio.wait_for(self.ws.close(code=1001), 1.0)
            self.ctx.engine.cancel_session(self.session_id)
            self._ops.ended()
            self._log_end()
            await self._record_usage()
            self.ctx.drain.discard(self)

    async def _finish(self, sender: asyncio.Task[None]) -> None:
        """After close_stream, the idle timeout or a drain: send what is owed, then close
        (1001 when the server is going away)."""
        await asyncio.wait({sender})
        if sender.cancelled():  # aborted: `run` closes with 1001
            return
        sender.result()  # the send loop's failure, if any
        code = 1001 if self._close_reason == "server_shutdown" else 1000
        await self._deliver(self.ws.close(code=code))
        self._close_code = code

    def drain(self) -> None:
        """The server is shutting down: end the session as close_stream would (the open
        turn's final goes out as the last message, `is_last: true`), then close with 1001."""
        if self._drain_requested is not None and not self._drain_requested.done():
            self._drain_requested.set_result(None)

    def abort(self) -> None:
        """The shutdown grace period is over: stop waiting for owed messages; close 1001."""
        self._aborted = True
        self.drain()
        if self._sender is not None:
            self._sender.cancel()

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
        with contextlib.suppress(TimeoutError, *_CLIENT_GONE):  # a client not reading: give up
            await asyncio.wait_for(self.ws.close(code=code), 1.0)

    async def _receive_loop(self, sender: asyncio.Task[None]) -> bool:
        """Returns True after close_stream (the send loop then finishes and we close)."""
        idle_timeout = self.ctx.settings.idle_timeout_s
        while True:
            # Over max_send_backlog_bytes: read no more frames until the backlog drains, so
            # TCP slows a client down that sends faster than it is answered (or reads nothing).
            if not await self._outbox.room():
                return False  # abandoned: the client does not read
            message = await self._next_message(idle_timeout)
            received_at = self._ops.now()  # the clock the send-side latencies use
            if message["type"] == "websocket.disconnect":
                self._client_closed(message.get("code"))
                return False
            if sender.done():  # the send side failed: the client is gone
                return False
            data = message.get("bytes")
            if data is not None:
                if not await self._feed(data, received_at):
                    return False  # abandoned: the client does not read
                continue
            try:
                control = parse_control(self._control_text(message))
            except ControlError as exc:
                self._post(error_message(str(exc), error="bad_message", session_id=self.session_id))
                continue
            except _TextFrameTooLargeError as exc:
                self._post(error_message(str(exc), error="too_large", session_id=self.session_id))
                continue
            if control is Control.FINALIZE:
                self._ops.finalize_requested(received_at)
                self._dispatch(await self._call(self.session.finalize))
            else:
                if self._close_reason not in (
                    "idle_timeout",
                    "server_shutdown",
                    "session_too_long",
                ):
                    self._close_reason = "close_stream"
                actions = await self._call(self.session.close)
                self._ops.audio_received(self.session.audio_seconds, received_at)  # the tail
                self._dispatch(actions)
                self._outbox.put(_CLOSE, 0)
                return True

    async def _feed(self, data: bytes, received_at: float) -> bool:
        """A binary frame, decoded a bounded piece at a time: one frame of Ogg/Opus can
        hold hours of audio. Between pieces other sessions get the DSP threads and the
        outbox must have room again. False: abandoned (the client does not read)."""
        while True:
            try:
                actions = await self._call(self.session.feed, data)
            except AudioDecodeError as exc:
                self._post(self._bad_audio(str(exc)))
            else:
                self._ops.audio_received(self.session.audio_seconds, received_at)
                self._dispatch(actions)
            if not self.session.has_pending_audio:
                return True
            data = b""
            if not await self._outbox.room():
                return False

    async def _next_message(self, idle_timeout: float) -> Message:
        """The client's next message; or, after `idle_timeout` s without one or when the
        server drains, a close_stream of our own: the session then ends as close_stream
        ends it, so the client still gets its finals and is_last."""
        assert self._drain_requested is not None and self._sender is not None
        close_stream: Message = {"type": "websocket.receive", "text": '{"type":"close_stream"}'}
        if time.monotonic() >= self._deadline:  # checked first: a busy stream never idles
            self._session_too_long()
            return close_stream
        receiving = asyncio.ensure_future(self.ws.receive())
        done, _ = await asyncio.wait(
            # the send loop ends early only when the client is gone or not reading: stop then
            (receiving, self._drain_requested, self._sender),
            timeout=min(idle_timeout, self._deadline - time.monotonic()),
            return_when=asyncio.FIRST_COMPLETED,
        )
        if receiving in done:
            return receiving.result()
        receiving.cancel()  # a message not read yet stays queued for nobody: we are closing
        if self._sender.done():
            return close_stream  # the receive loop sees the send loop ended and stops
        if self._drain_requested.done():
            self._close_reason = "server_shutdown"
        elif time.monotonic() >= self._deadline:
            self._session_too_long()
        else:
            self._log.info("idle for %gs, closing", idle_timeout)
            self._close_reason = "idle_timeout"
        return close_stream

    def _session_too_long(self) -> None:
        """max_session_s is over: say so, then the session ends as close_stream ends it."""
        limit = self.ctx.settings.max_session_s
        self._log.info("session reached max_session_s (%gs), closing", limit)
        self._close_reason = "session_too_long"
        self._post(
            error_message(
                f"this session reached the server's limit of {limit:g} s (max_session_s): "
                "the finals of the audio received follow, then the session closes; open a "
                "new session to go on.",
                error="session_too_long",
                session_id=self.session_id,
            )
        )

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
        text = _encode(message)
        self._outbox.put(_Ready(message, text), len(text))

    def _control_text(self, message: Message) -> str:
        text: str = message.get("text") or ""
        limit = self.ctx.settings.max_text_frame_bytes
        if _utf8_size_over(text, limit):  # not even parsed: control messages are tiny
            raise _TextFrameTooLargeError(
                f"text frame of {len(text.encode())} bytes is over this server's limit of "
                f"{limit} bytes for control messages (max_text_frame_bytes); {HINT}."
            )
        return text

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
            plain_partial = not action.is_final and not action.speculative
            self._outbox.put(
                _Pending(
                    action,
                    self._decode(action, request),
                    self._embed(action),
                    request.start_s,
                ),
                action.audio.nbytes + _PENDING_OVERHEAD,
                # a newer partial of the turn replaces this one while it waits to be sent
                partial_of=action.utterance if plain_partial else None,
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
        try:
            while (item := await self._outbox.get()) is not _CLOSE:
                if isinstance(item, _Ready):
                    await self._deliver(self.ws.send_text(item.text))
                    self._sent(item.message)
                elif isinstance(item, _Pending):
                    message = await self._resolve(item)
                    if message is not None:
                        await self._deliver(self.ws.send_json(message))
                        self._sent(message, item)
        except SlowReaderError:
            await self._close_slow_reader()
        finally:
            # However the send loop ends, nothing more will be written: wake the receive
            # loop if it waits for room, and let go of what was queued.
            self._outbox.abandon()

    async def _deliver(self, write: Awaitable[None]) -> None:
        """One write to the client. uvicorn holds it while the socket's buffer is full (the
        client is not reading): after send_timeout_s of that, the client is not reading."""
        try:
            await asyncio.wait_for(write, self.ctx.settings.send_timeout_s)
        except TimeoutError:
            raise SlowReaderError from None

    async def _close_slow_reader(self) -> None:
        """Free what the session holds now and close with 1008. The close frame waits behind
        what the client has not read; the connection closes once uvicorn has written it."""
        self._log.warning("client read nothing for %gs, closing", self.ctx.settings.send_timeout_s)
        self._close_code, self._close_reason = 1008, "slow_reader"
        self.ctx.metrics.error("slow_reader")
        self._outbox.abandon()
        self.ctx.engine.cancel_session(self.session_id)
        with contextlib.suppress(TimeoutError, *_CLIENT_GONE):
            await asyncio.wait_for(
                self.ws.close(code=1008, reason="client is not reading its messages"), 1.0
            )

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
            await self._deliver(self.ws.send_json(failed))
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
