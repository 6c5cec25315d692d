"""The streaming WebSocket endpoint: the handshake (api/handshake.py), then one
`StreamRunner` per connection.

The runner only moves frames. Its receive loop hands audio and control messages to the
connection's `LiveStream` (stream/live.py: what a stream means), waiting for room in the
stream's backlog before reading the next frame; its send loop writes the stream's events,
in order, as wire JSON; and it closes the socket with the code its `CloseReason` carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from pulse_stt.api.admission import FramePacer, Refusal
from pulse_stt.api.auth import accepted_subprotocol
from pulse_stt.api.context import ServerContext
from pulse_stt.api.control import (
    HINT,
    Control,
    ControlError,
    UnknownControlError,
    parse_control,
)
from pulse_stt.api.handshake import (
    LEGACY_PATH,
    LIVE_PATH,
    HandshakeDenial,
    check_handshake,
    is_legacy_path,
)
from pulse_stt.api.schemas import event_message
from pulse_stt.config import Settings
from pulse_stt.ops.logs import ContextLogger
from pulse_stt.ops.metrics import StreamMetrics
from pulse_stt.protocol import ErrorKind, StreamParams
from pulse_stt.store.db import ApiKey
from pulse_stt.stream.channels import open_stream
from pulse_stt.stream.events import (
    ErrorEvent,
    LiveEvent,
    PongEvent,
    TranscriptEvent,
    WarningEvent,
)
from pulse_stt.stream.live import LiveConfig, LiveServices

log = logging.getLogger(__name__)


async def stream_endpoint(websocket: WebSocket) -> None:
    ctx: ServerContext = websocket.app.state.ctx
    try:
        checked = await check_handshake(ctx, websocket)
    except Exception:  # a bug: the handshake is answered 500; counted like a REST 500
        ctx.metrics.error(ErrorKind.INTERNAL)
        raise
    if isinstance(checked, HandshakeDenial):
        ctx.metrics.error(checked.error)
        await websocket.send_denial_response(checked.response)
        return
    key, params = checked
    # A stream of N channels is N streams of model work: it holds N slots (api/admission.py).
    admitted = ctx.admission.admit(key.id, ctx.engine, token=key.token_id, weight=params.channels)
    if isinstance(admitted, Refusal):
        ctx.metrics.error(admitted.error)
        with contextlib.suppress(*_TRANSPORT_ERRORS):
            await admitted.refuse_stream(websocket, accepted_subprotocol(websocket))
        return
    with admitted:  # the session's slot (per key and per server), held until it ends
        await websocket.accept(subprotocol=accepted_subprotocol(websocket))
        path = LEGACY_PATH if is_legacy_path(websocket) else LIVE_PATH
        runner = StreamRunner(ctx, websocket, params, key, path)
        await runner.run()


def session_limit_s(settings: Settings, key: ApiKey) -> float:
    """How long a session may still last from now: max_session_s; for a session opened
    with a browser token, at most until token_session_grace_s after the token expires."""
    limit = settings.max_session_s
    if key.token_expires_at is not None:
        left = (key.token_expires_at - datetime.now(UTC)).total_seconds()
        limit = min(limit, max(0.0, left + settings.token_session_grace_s))
    return limit


class CloseReason(Enum):
    """Why a session ended (logged), and the close code the server sends for it (None:
    the client closed, or the code is whatever the client's close frame said)."""

    CLIENT_DISCONNECTED = ("client_disconnected", None)
    CLOSE_STREAM = ("close_stream", 1000)  # close_stream or end
    IDLE_TIMEOUT = ("idle_timeout", 1000)  # ended as close_stream would
    SESSION_TOO_LONG = ("session_too_long", 1000)  # max_session_s; likewise
    SERVER_SHUTDOWN = ("server_shutdown", 1001)  # drained: likewise, then 1001
    SHUTDOWN_DEADLINE = ("shutdown_deadline", 1001)  # the grace period ran out
    SLOW_READER = ("slow_reader", 1008)
    FRAME_TOO_LARGE = ("frame_too_large", 1009)  # closed by uvicorn: max_frame_bytes
    SERVER_ERROR = ("server_error", 1011)

    def __init__(self, label: str, code: int | None) -> None:
        self.label = label
        self.code = code


class SlowReaderError(Exception):
    """The client took nothing the server sent for send_timeout_s: it is not reading."""


class ClientGoneError(Exception):
    """A write or read failed because the client is gone: nothing more can be delivered."""


class _TextFrameTooLargeError(ValueError):
    pass


def _encode(message: dict[str, Any]) -> str:
    """A message as Starlette's send_json writes it."""
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _utf8_size_over(text: str, limit: int) -> bool:
    return len(text) > limit or (not text.isascii() and len(text.encode()) > limit)


# What a call on the socket raises once the client is gone (Starlette raises RuntimeError
# for a send after the close handshake). Caught around socket calls only: a RuntimeError
# of our own is a bug, logged and answered with 1011.
_TRANSPORT_ERRORS = (WebSocketDisconnect, ConnectionError, RuntimeError)
_CLIENT_GONE = (WebSocketDisconnect, ConnectionError, ClientGoneError)


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
        settings = ctx.settings
        limit_s = session_limit_s(settings, key)
        self._deadline = time.monotonic() + limit_s
        self._token_bound = limit_s < settings.max_session_s  # the token's expiry comes first
        self._pacer = FramePacer(settings.max_frames_per_s, time.monotonic)
        self._log = ContextLogger(log, {"session_id": self.session_id})
        self._ops: StreamMetrics = ctx.metrics.stream_session(
            "legacy" if endpoint == LEGACY_PATH else "live"
        )
        self.live = open_stream(
            self.session_id,
            params,
            LiveServices(
                decoder=ctx.engine,
                dsp_pool=ctx.dsp_pool,
                speaker_pool=ctx.speaker_pool,
                itn=ctx.itn,
                speaker_encoder=ctx.speaker_encoder,
            ),
            LiveConfig(
                vad_threshold=settings.vad_threshold,
                partial_interval_ms=settings.partial_interval_ms,
                max_utterance_s=settings.max_utterance_s,
                max_backlog_bytes=settings.max_send_backlog_bytes,
                stable_finals=settings.stable_finals,
            ),
            observer=self._ops,
            log=self._log,
        )
        self._close = CloseReason.CLIENT_DISCONNECTED
        self._close_code: int | None = None  # the code sent, or the client's
        # Set by `drain()` when the server shuts down (created in `run`, on the loop).
        self._drain_requested: asyncio.Future[None] | None = None
        self._sender: asyncio.Task[None] | None = None
        self._aborted = False  # the shutdown grace period ran out

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
            await self._close_quietly()
        finally:
            if not sender.done():
                sender.cancel()
            elif (failure := _unexpected_failure(sender)) is not None:
                self._log.error("send loop failed", exc_info=failure)
                await self._close_quietly()
            if self._aborted and self._close_code is None:
                await self._close_with(CloseReason.SHUTDOWN_DEADLINE)
            self.live.cancel()
            self._ops.ended()
            self._log_end()
            await self._record_usage()
            self.ctx.drain.discard(self)

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

    # -- receiving ------------------------------------------------------------------------

    async def _receive_loop(self, sender: asyncio.Task[None]) -> bool:
        """Returns True once the stream was ended (close_stream, idle, drain, deadline):
        the send loop then delivers what is owed and we close."""
        while True:
            # Over max_send_backlog_bytes: read no more frames until the backlog drains, so
            # TCP slows a client down that sends faster than it is answered (or reads nothing).
            if not await self.live.room():
                return False  # abandoned: the client does not read
            received = await self._next_input()
            received_at = self._ops.now()  # the clock the send-side latencies use
            if received is None:  # the send loop ended: the client is gone or not reading
                return False
            if isinstance(received, CloseReason):
                await self._end_stream(received, received_at)
                return True
            if received["type"] == "websocket.disconnect":
                self._client_closed(received.get("code"))
                return False
            if sender.done():  # the send side failed: the client is gone
                return False
            # A fixed cost per frame, whatever its size: a flood of tiny frames waits here,
            # before its next read, instead of taking the DSP threads from other sessions.
            if (wait := self._pacer.charge()) > 0:
                await asyncio.sleep(wait)
            data = received.get("bytes")
            if data is not None:
                if not await self.live.feed(data, received_at):
                    return False  # abandoned: the client does not read
                continue
            try:
                control = parse_control(self._control_text(received))
            except UnknownControlError as exc:
                self._log.debug("ignored a text frame: %s", exc)
                self.live.post_notice(WarningEvent("unknown_message", str(exc)))
                continue
            except ControlError as exc:
                self.live.post_error(ErrorKind.BAD_MESSAGE, str(exc))
                continue
            except _TextFrameTooLargeError as exc:
                self.live.post_error(ErrorKind.TOO_LARGE, str(exc))
                continue
            if control is Control.KEEPALIVE:  # receiving it was the point: the idle clock
                self.live.post_notice(PongEvent())
            elif control is Control.FINALIZE:
                self._ops.finalize_requested(received_at)
                await self.live.finalize()
            else:
                await self._end_stream(CloseReason.CLOSE_STREAM, received_at)
                return True

    async def _next_input(self) -> Message | CloseReason | None:
        """The client's next frame; or a reason of the server's to end the stream as
        close_stream would (idle timeout, drain, max_session_s: the client still gets its
        finals and is_last); or None once the send loop has ended."""
        assert self._drain_requested is not None and self._sender is not None
        if time.monotonic() >= self._deadline:  # checked first: a busy stream never idles
            return CloseReason.SESSION_TOO_LONG
        idle_timeout = self.ctx.settings.idle_timeout_s
        receiving = asyncio.ensure_future(self.ws.receive())
        done, _ = await asyncio.wait(
            # the send loop ends early only when the client is gone or not reading: stop then
            (receiving, self._drain_requested, self._sender),
            timeout=min(idle_timeout, self._deadline - time.monotonic()),
            return_when=asyncio.FIRST_COMPLETED,
        )
        if receiving in done:
            try:
                return receiving.result()
            except _TRANSPORT_ERRORS as exc:
                raise ClientGoneError from exc
        receiving.cancel()  # a message not read yet stays queued for nobody: we are closing
        if self._sender.done():
            return None
        if self._drain_requested.done():
            return CloseReason.SERVER_SHUTDOWN
        if time.monotonic() >= self._deadline:
            return CloseReason.SESSION_TOO_LONG
        self._log.info("idle for %gs, closing", idle_timeout)
        return CloseReason.IDLE_TIMEOUT

    async def _end_stream(self, reason: CloseReason, received_at: float) -> None:
        """Owe the finals of everything received, then close for `reason`."""
        self._close = reason
        if reason is CloseReason.SESSION_TOO_LONG:
            settings = self.ctx.settings
            limit = settings.max_session_s
            if self._token_bound:
                grace = settings.token_session_grace_s
                self._log.info("token expired %gs ago (token_session_grace_s), closing", grace)
                self.live.post_error(
                    ErrorKind.SESSION_TOO_LONG,
                    f"the browser token this session was opened with expired {grace:g} s ago "
                    "(token_session_grace_s): the finals of the audio received follow, then "
                    "the session closes; open a new session with a fresh token to go on.",
                )
            else:
                self._log.info("session reached max_session_s (%gs), closing", limit)
                self.live.post_error(
                    ErrorKind.SESSION_TOO_LONG,
                    f"this session reached the server's limit of {limit:g} s (max_session_s): "
                    "the finals of the audio received follow, then the session closes; open a "
                    "new session to go on.",
                )
        await self.live.close(received_at)

    def _control_text(self, message: Message) -> str:
        text: str = message.get("text") or ""
        limit = self.ctx.settings.max_text_frame_bytes
        if _utf8_size_over(text, limit):  # not even parsed: control messages are tiny
            raise _TextFrameTooLargeError(
                f"text frame of {len(text.encode())} bytes is over this server's limit of "
                f"{limit} bytes for control messages (max_text_frame_bytes); {HINT}."
            )
        return text

    def _client_closed(self, code: int | None) -> None:
        self._close_code = code
        if code == CloseReason.FRAME_TOO_LARGE.code:  # uvicorn closed it: max_frame_bytes
            self._close = CloseReason.FRAME_TOO_LARGE
            self.ctx.metrics.error(ErrorKind.TOO_LARGE)

    # -- sending --------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        try:
            while (events := await self.live.next_events()) is not None:
                for event in events:
                    message = event_message(event, self.session_id, self.params.text)
                    await self._deliver(self.ws.send_text(_encode(message)))
                    self._sent(event)
        except SlowReaderError:
            await self._close_slow_reader()
        finally:
            # However the send loop ends, nothing more will be written: wake the receive
            # loop if it waits for room, and let go of what was queued.
            self.live.abandon()

    async def _deliver(self, write: Awaitable[None]) -> None:
        """One write to the client. uvicorn holds it while the socket's buffer is full (the
        client is not reading): after send_timeout_s of that, the client is not reading."""
        try:
            await asyncio.wait_for(write, self.ctx.settings.send_timeout_s)
        except TimeoutError:
            raise SlowReaderError from None
        except _TRANSPORT_ERRORS as exc:
            raise ClientGoneError from exc

    async def _finish(self, sender: asyncio.Task[None]) -> None:
        """After the stream was ended: wait until what is owed is sent, then close (1001
        when the server is going away)."""
        await asyncio.wait({sender})
        if sender.cancelled():  # aborted: `run` closes with 1001
            return
        sender.result()  # the send loop's failure, if any
        code = self._close.code or 1000
        await self._deliver(self.ws.close(code=code))
        self._close_code = code

    async def _close_slow_reader(self) -> None:
        """Free what the session holds now and close with 1008. The close frame waits behind
        what the client has not read; the connection closes once uvicorn has written it."""
        self._log.warning("client read nothing for %gs, closing", self.ctx.settings.send_timeout_s)
        self.ctx.metrics.error(ErrorKind.SLOW_READER)
        self.live.abandon()
        self.live.cancel()
        await self._close_with(CloseReason.SLOW_READER, "client is not reading its messages")

    async def _close_quietly(self) -> None:
        """A bug ended the session: 1011."""
        self.ctx.metrics.error(ErrorKind.INTERNAL)
        await self._close_with(CloseReason.SERVER_ERROR)

    async def _close_with(self, reason: CloseReason, text: str = "") -> None:
        """Close now for `reason`, giving up after 1 s on a client that does not read."""
        self._close, self._close_code = reason, reason.code
        with contextlib.suppress(TimeoutError, *_TRANSPORT_ERRORS):
            await asyncio.wait_for(self.ws.close(code=reason.code or 1000, reason=text), 1.0)

    def _sent(self, event: LiveEvent) -> None:
        """Metrics (and, when the operator asked for it, the transcript log) of a sent event."""
        if isinstance(event, ErrorEvent):
            self._ops.error_sent(event.kind)
        elif isinstance(event, PongEvent):
            self._ops.notice_sent("pong")
        elif isinstance(event, WarningEvent):
            self._ops.notice_sent("warning")
        elif not isinstance(event, TranscriptEvent):
            self._ops.vad_sent()
        else:
            self._ops.transcription_sent(
                turn=event.turn,
                is_final=event.is_final,
                reason=event.reason,
                has_text=bool(event.transcript.text),
                words=event.timed_words,
            )
            if event.is_final and self.ctx.settings.log_transcripts:
                self._log.info(
                    "final",
                    extra={
                        "turn": event.turn,
                        "reason": event.reason,
                        "transcript": event.transcript.text,
                    },
                )

    # -- bookkeeping ----------------------------------------------------------------------

    def _log_start(self) -> None:
        params = self.params
        self._log.info(
            "session started",
            extra={
                "endpoint": self.endpoint,
                "key_id": self.key.id,
                "encoding": params.encoding,
                "sample_rate": params.sample_rate,
                "channels": params.channels,
                "language": params.language.requested,
                "external_session_id": params.external_session_id,
            },
        )

    def _log_end(self) -> None:
        self._log.info(
            "session ended",
            extra={
                "duration_s": round((datetime.now(UTC) - self.started_at).total_seconds(), 3),
                "audio_s": round(self.live.audio_seconds, 3),
                "finals": self._ops.finals_sent,
                "messages": self._ops.messages_sent,
                "close_code": self._close_code,
                "close_reason": self._close.label,
            },
        )

    async def _record_usage(self) -> None:
        try:  # queued if the store is unreachable
            await self.ctx.usage.record(
                key_id=self.key.id,
                session_id=self.session_id,
                endpoint=self.endpoint,
                audio_seconds=self.live.audio_seconds,
                started_at=self.started_at,
                external_session_id=self.params.external_session_id,
            )
        except Exception:
            self._log.exception("could not record usage")
