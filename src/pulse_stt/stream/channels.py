"""A stream of several interleaved channels (`channels=N`, a pulse-stt extension): one
`LiveStream` per channel, on the shared engine, behind the interface of one.

Each binary frame is split into its channels (audio/pcm.py `Deinterleaver`; a frame that
ends inside a sample frame keeps the rest for the next one) and each channel's bytes go to
its own stream: its own VAD, turns, partials, finals, speakers. Control applies to every
channel: `finalize` owes one final per channel, `close_stream` the finals of every
channel. Every transcript and VAD event is tagged with its channel; `is_last` is sent
once, on the close final of the channel whose close final comes last, so it is always the
last transcript of the stream. Errors and notices of the connection go out untagged, in
order with channel 0.

Like api/websocket.py's single stream, this needs no socket: the transport calls the same
methods (see `open_stream`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from pulse_stt.audio.pcm import Deinterleaver
from pulse_stt.protocol import ErrorKind, StreamParams
from pulse_stt.stream.events import (
    LiveEvent,
    PongEvent,
    TranscriptEvent,
    VadEvent,
    WarningEvent,
)
from pulse_stt.stream.live import LiveConfig, LiveObserver, LiveServices, LiveStream


def open_stream(
    session_id: str,
    params: StreamParams,
    services: LiveServices,
    config: LiveConfig | None = None,
    *,
    observer: LiveObserver | None = None,
    log: logging.LoggerAdapter[logging.Logger] | logging.Logger | None = None,
) -> LiveStream | ChannelStreams:
    """The stream a connection's parameters ask for: one channel, or several."""
    if params.channels > 1:
        return ChannelStreams(session_id, params, services, config, observer=observer, log=log)
    return LiveStream(session_id, params, services, config, observer=observer, log=log)


class ChannelStreams:
    """`channels` LiveStreams fed from one connection. Call its coroutines as a
    `LiveStream`'s: `feed`, `finalize` and `close` in the client's order, while one task
    takes `next_events()`."""

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
        self.session_id = session_id
        self.params = params
        self._split = Deinterleaver(params.encoding, params.channels)
        mono = replace(params, channels=1)
        # Each channel is a session of its own on the engine (its partials superseded and
        # its work cancelled apart from the others'). The latency metrics follow channel 0.
        self.streams = [
            LiveStream(
                f"{session_id}/{channel}",
                mono,
                services,
                config,
                observer=observer if channel == 0 else None,
                log=log,
            )
            for channel in range(params.channels)
        ]
        self._open = set(range(params.channels))  # channels with events still to come
        self._waiting: dict[int, asyncio.Future[list[LiveEvent] | None]] = {}
        self._closes_left = params.channels  # close finals not yet handed out

    @property
    def audio_seconds(self) -> float:
        """The recording's length (every channel carries the same amount of audio)."""
        return self.streams[0].audio_seconds

    async def room(self) -> bool:
        for stream in self.streams:
            if not await stream.room():
                return False
        return True

    async def feed(self, data: bytes, received_at: float) -> bool:
        parts = self._split.split(data)
        if not parts[0]:
            return True  # less than one sample frame so far: kept for the next frame
        fed = await asyncio.gather(
            *(
                stream.feed(part, received_at)
                for stream, part in zip(self.streams, parts, strict=True)
            )
        )
        return all(fed)

    async def finalize(self) -> None:
        await asyncio.gather(*(stream.finalize() for stream in self.streams))

    async def close(self, received_at: float) -> None:
        await asyncio.gather(*(stream.close(received_at) for stream in self.streams))

    def post_error(self, kind: ErrorKind, message: str) -> None:
        self.streams[0].post_error(kind, message)

    def post_notice(self, event: PongEvent | WarningEvent) -> None:
        self.streams[0].post_notice(event)

    def abandon(self) -> None:
        for stream in self.streams:
            stream.abandon()

    def cancel(self) -> None:
        for waiting in self._waiting.values():
            waiting.cancel()
        self._waiting.clear()
        for stream in self.streams:
            stream.cancel()

    async def next_events(self) -> list[LiveEvent] | None:
        """The next events of whichever channel has some first (each channel's in its
        order), tagged with their channel; None once every channel is over."""
        while self._open:
            for channel in self._open:
                if channel not in self._waiting:
                    self._waiting[channel] = asyncio.ensure_future(
                        self.streams[channel].next_events()
                    )
            await asyncio.wait(self._waiting.values(), return_when=asyncio.FIRST_COMPLETED)
            for channel in sorted(self._waiting):
                waiting = self._waiting[channel]
                if not waiting.done():
                    continue
                del self._waiting[channel]
                events = waiting.result()
                if events is None:
                    self._open.discard(channel)
                    continue
                return [self._tag(channel, event) for event in events]
        return None

    def _tag(self, channel: int, event: LiveEvent) -> LiveEvent:
        if isinstance(event, TranscriptEvent):
            if event.is_last:  # a channel's close final: the stream's last only if no more owed
                self._closes_left -= 1
                event = replace(event, ends_stream=self._closes_left == 0)
            return replace(event, channel=channel)
        if isinstance(event, VadEvent):
            return replace(event, channel=channel)
        return event
