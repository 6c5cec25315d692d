"""Soak: N callers for M minutes with random behaviour; every final owed is accounted for.

Each caller loops over connections until the time is up. A connection streams real
recordings at real-time pace (or `speed` times it) and, turn by turn, picks at random
(seeded, so a run can be repeated) what a real caller does at the end of an utterance:

- `finalize`: 0.3 s of silence, `{"type":"finalize"}`, 0.7 s of silence. Owed: exactly one
  `from_finalize` final.
- `eou`: silence until the end of utterance fires (`eou_timeout_ms` + 1.2 s). Owed: a final
  (not from finalize, not is_last) holding words of the turn.
- `close`: 0.3 s of silence, `close_stream`. Owed: exactly one `is_last` final, then close
  1000. The caller reconnects.
- `drop` / `drop_with_close`: once the finals owed so far have arrived, hang up in the
  middle of the next utterance, the TCP connection aborted without a close frame or
  closed with one. Nothing is owed for the cut turn. The caller reconnects.

Now and then a turn starts with a bad frame: a malformed text frame (owed: an `error`
with `error: "bad_message"`, and the session goes on) or a bad binary frame. With
`encoding=opus` that is a structurally invalid Opus packet (owed: `bad_audio`); with
`linear16` any even number of bytes is valid (if loud) PCM, so a burst of random bytes
is sent and nothing is owed for it.

Refusals (HTTP 429/503 before the upgrade, or close 1008/1013 right after it) are counted,
not judged: the caller waits and tries again. The server's RSS and CPU are sampled from
/proc when its pid is known (same machine), its active sessions from `/metrics`.
Nothing here passes or fails; `SoakReport` says what happened. The accounting is in
`scoring`, what is sent in `inputs`, the samples in `resources`, the text form in `report`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import numpy as np
import websockets
from websockets.exceptions import InvalidStatus

from pulse_stt.protocol import MODEL_RATE as RATE
from tests.support.soak.inputs import (
    BEHAVIOURS,
    MALFORMED_TEXT,
    OPUS_PACKET_S,
    BadFrame,
    Behaviour,
    SoakClip,
    SoakOptions,
    invalid_opus_packet,
    opus_packets,
)
from tests.support.soak.report import SoakReport
from tests.support.soak.resources import (
    ResourceSample,
    active_sessions,
    http_base,
    process_usage,
)
from tests.support.soak.scoring import (
    Arrival,
    ConnectionReport,
    TurnRecord,
    eou_covered,
    final_arrivals,
    score_connection,
)

_FINALIZE_PAUSE_S = (0.3, 0.7)  # silence before and after finalize (as loadgen sends)
_EOU_MARGIN_S = 1.2  # silence beyond eou_timeout_ms, so the end of utterance surely fires
_REFUSED_CODES = (1008, 1013)  # too many sessions / try again later


@dataclass
class _Tally:
    """Running totals that the resource samples show beside RSS (one per soak run)."""

    connections: int = 0
    turns: int = 0
    finals: int = 0
    errors: int = 0


Payload = tuple[bytes | str, float]  # a frame and the seconds of audio it carries


class _Connection:
    """One WebSocket connection of one caller: a few turns, then close or hang up."""

    def __init__(
        self,
        *,
        url: str,
        key: str,
        options: SoakOptions,
        clips: Sequence[SoakClip],
        silence_packet: bytes,
        rng: random.Random,
        stream: int,
        deadline: float,
        tally: _Tally,
    ) -> None:
        self._options = options
        self._clips = clips
        self._silence_packet = silence_packet
        self._rng = rng
        self._deadline = deadline
        self._tally = tally
        encoding = "opus" if rng.random() < options.opus_share else "linear16"
        legacy = rng.random() < options.legacy_share
        path = "/waves/v1/pulse/get_text" if legacy else "/waves/v1/stt/live"
        query = (
            f"language=en&encoding={encoding}&sample_rate={RATE}&word_timestamps=true"
            f"&eou_timeout_ms={options.eou_timeout_ms}"
        )
        self._url = f"{url}{path}?{query if legacy else 'model=pulse&' + query}"
        self._key = key
        self.report = ConnectionReport(stream, encoding, path)
        self._turns: list[TurnRecord] = []
        self._arrivals: list[Arrival] = []
        self._finalize_sent: list[float] = []
        self._position = 0.0  # seconds of audio sent
        self._started: float | None = None  # wall time of the first audio frame
        self._news = asyncio.Event()  # set on every message and when the socket closes
        self._closed = asyncio.Event()

    async def run(self) -> ConnectionReport:
        report = self.report
        try:
            ws = await websockets.connect(
                self._url,
                additional_headers={"Authorization": f"Bearer {self._key}"},
                max_size=None,
                open_timeout=30,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            report.refused = f"http {status}"
            report.retry_after_s = _retry_after(exc.response.headers.get("Retry-After"))
            if status not in (429, 503):
                report.unexpected.append(f"the handshake was refused with HTTP {status}")
            return report
        except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
            report.refused = f"connect failed ({type(exc).__name__})"
            report.unexpected.append(f"could not connect: {exc!r}")
            return report
        self._tally.connections += 1
        receiver = asyncio.create_task(self._receive(ws))
        try:
            await self._talk(ws)
        except websockets.ConnectionClosed:
            report.ended = "server_closed"
        finally:
            if report.ended in ("closed", "server_closed"):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), 10)
                if not self._closed.is_set():
                    report.unexpected.append("the server did not close the connection")
                    await ws.close()
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await receiver
        report.close_code = ws.close_code if report.ended != "dropped" else None
        report.audio_s = self._position
        if (
            report.ended == "server_closed"
            and report.close_code in _REFUSED_CODES
            and not final_arrivals(self._arrivals)
        ):
            report.refused = f"close {report.close_code}"  # refused after the upgrade
            self._arrivals = [a for a in self._arrivals if a.message.get("type") != "error"]
        if not report.refused:
            score_connection(
                report,
                self._turns,
                self._arrivals,
                self._finalize_sent,
                expect_last=report.close_sent,
            )
        return report

    async def _receive(self, ws: websockets.ClientConnection) -> None:
        try:
            async for raw in ws:
                at = time.monotonic()
                try:
                    message = json.loads(raw)
                except ValueError:
                    message = None
                if not isinstance(message, dict):
                    self.report.unexpected.append(
                        f"a server message is not a JSON object: {raw!r:.80}"
                    )
                    continue
                self._arrivals.append(Arrival(at, message))
                if message.get("type") == "error":
                    self._tally.errors += 1
                elif message.get("type") == "transcription" and message.get("is_final"):
                    self._tally.finals += 1
                self._news.set()
        except websockets.ConnectionClosed:
            pass
        finally:
            self._closed.set()
            self._news.set()

    async def _talk(self, ws: websockets.ClientConnection) -> None:
        options, rng = self._options, self._rng
        while True:
            if time.monotonic() >= self._deadline:
                await self._close_stream(ws)
                return
            behaviour = rng.choices(BEHAVIOURS, weights=options.weights)[0]
            clip = rng.choice(self._clips)
            bad_frame = await self._maybe_bad_frame(ws)
            self._tally.turns += 1
            if behaviour in ("drop", "drop_with_close"):
                await self._silence_until(ws, self._owed_arrived)
                payloads = self._clip_payloads(clip)
                cut = max(1, int(len(payloads) * rng.uniform(0.3, 0.8)))
                await self._send_turn(ws, behaviour, clip, payloads[:cut], bad_frame)
                if behaviour == "drop":
                    ws.transport.abort()  # the caller vanishes: no close frame
                    self.report.ended = "dropped"
                else:
                    await ws.close(1000)
                    self.report.ended = "dropped_with_close"
                return
            await self._send_turn(ws, behaviour, clip, self._clip_payloads(clip), bad_frame)
            if behaviour == "finalize":
                await self._send(ws, self._silence(_FINALIZE_PAUSE_S[0]))
                await ws.send(json.dumps({"type": "finalize"}))
                self._finalize_sent.append(time.monotonic())
                self.report.finalizes += 1
                await self._send(ws, self._silence(_FINALIZE_PAUSE_S[1]))
            elif behaviour == "eou":
                await self._send(ws, self._silence(options.eou_timeout_ms / 1000 + _EOU_MARGIN_S))
            else:
                await self._close_stream(ws)
                return

    async def _send_turn(
        self,
        ws: websockets.ClientConnection,
        behaviour: Behaviour,
        clip: SoakClip,
        payloads: list[Payload],
        bad_frame: BadFrame | None,
    ) -> None:
        start = self._position
        await self._send(ws, payloads)
        self._turns.append(
            TurnRecord(behaviour, start, self._position, clip.text, bad_frame, time.monotonic())
        )

    async def _maybe_bad_frame(self, ws: websockets.ClientConnection) -> BadFrame | None:
        rng = self._rng
        if rng.random() >= self._options.bad_frame_chance:
            return None
        kind: BadFrame
        if rng.random() < 0.5:
            kind = "text"
            await ws.send(rng.choice(MALFORMED_TEXT))
        elif self.report.encoding == "opus":
            kind = "opus"
            await ws.send(invalid_opus_packet(rng))
        else:
            # Random bytes are valid linear16: an even count keeps later samples aligned.
            kind = "noise"
            noise = rng.randbytes(2 * rng.randrange(1, 160))
            await self._send(ws, [(noise, len(noise) / 2 / RATE)])
        self.report.bad_frames[kind] += 1
        return kind

    def _clip_payloads(self, clip: SoakClip) -> list[Payload]:
        if self.report.encoding == "opus":
            return [(packet, OPUS_PACKET_S) for packet in clip.opus]
        pcm = clip.pcm
        step = 2 * RATE * self._options.frame_ms // 1000
        return [
            (pcm[i : i + step], len(pcm[i : i + step]) / 2 / RATE) for i in range(0, len(pcm), step)
        ]

    def _silence(self, seconds: float) -> list[Payload]:
        if self.report.encoding == "opus":
            return [(self._silence_packet, OPUS_PACKET_S)] * max(1, round(seconds / OPUS_PACKET_S))
        step = RATE * self._options.frame_ms // 1000
        total = int(seconds * RATE)
        return [
            (bytes(2 * min(step, total - i)), min(step, total - i) / RATE)
            for i in range(0, total, step)
        ]

    async def _send(self, ws: websockets.ClientConnection, payloads: Sequence[Payload]) -> None:
        """Send audio frames at `speed` times real time."""
        for payload, seconds in payloads:
            if self._started is None:
                self._started = time.monotonic()
            await ws.send(payload)
            self._position += seconds
            ahead = self._position / self._options.speed - (time.monotonic() - self._started)
            if ahead > 0:
                await asyncio.sleep(ahead)

    def _owed_arrived(self) -> bool:
        finals = final_arrivals(self._arrivals)
        if sum(1 for a in finals if a.message.get("from_finalize")) < len(self._finalize_sent):
            return False
        errors = Counter(
            a.message.get("error") for a in self._arrivals if a.message.get("type") == "error"
        )
        bad = self.report.bad_frames
        if errors["bad_message"] < bad["text"] or errors["bad_audio"] < bad["opus"]:
            return False
        return all(eou_covered(t, finals) for t in self._turns if t.behaviour == "eou")

    async def _silence_until(
        self, ws: websockets.ClientConnection, done: Callable[[], bool]
    ) -> None:
        """Keep streaming silence (as a live caller does) until `done()` or the time limit."""
        give_up = time.monotonic() + self._options.final_timeout_s
        while not done() and not self._closed.is_set() and time.monotonic() < give_up:
            await self._send(ws, self._silence(0.1))

    async def _close_stream(self, ws: websockets.ClientConnection) -> None:
        await self._send(ws, self._silence(_FINALIZE_PAUSE_S[0]))
        await ws.send(json.dumps({"type": "close_stream"}))
        self.report.close_sent = True
        give_up = time.monotonic() + self._options.final_timeout_s
        while not self._closed.is_set() and (remaining := give_up - time.monotonic()) > 0:
            if any(a.message.get("is_last") for a in self._arrivals):
                return
            self._news.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._news.wait(), remaining)


def _retry_after(value: str | None) -> float:
    try:
        return max(0.1, float(value)) if value else 1.0
    except ValueError:
        return 1.0


async def run_soak(
    url: str,
    key: str,
    clips: Sequence[SoakClip],
    options: SoakOptions,
    *,
    server_pid: int | None = None,
    on_sample: Callable[[ResourceSample], None] | None = None,
) -> SoakReport:
    """`options.streams` callers against `url` (ws://host:port) for `options.duration_s`.

    Clips need Opus packets (`SoakClip.with_opus`) when `options.opus_share` > 0.
    `server_pid`: the server's process on this machine, for RSS and CPU samples.
    """
    if options.opus_share > 0 and not all(c.opus for c in clips):
        raise ValueError("opus_share > 0 needs clips with Opus packets (SoakClip.with_opus)")
    silence = opus_packets(np.zeros(RATE, np.float32)) if options.opus_share > 0 else ()
    silence_packet = silence[len(silence) // 2] if silence else b""
    tally = _Tally()
    reports: list[ConnectionReport] = []
    samples: list[ResourceSample] = []
    started = time.monotonic()
    deadline = started + options.duration_s

    async def caller(stream: int) -> None:
        rng = random.Random(f"{options.seed}:{stream}")
        await asyncio.sleep(stream * options.stagger_s)
        while time.monotonic() < deadline:
            connection = _Connection(
                url=url.rstrip("/"),
                key=key,
                options=options,
                clips=clips,
                silence_packet=silence_packet,
                rng=rng,
                stream=stream,
                deadline=deadline,
                tally=tally,
            )
            report = await connection.run()
            reports.append(report)
            if report.refused:
                await asyncio.sleep(min(report.retry_after_s, 5.0))

    async def sampler(stop: asyncio.Event) -> None:
        http_url = http_base(url)
        async with httpx.AsyncClient() as client:
            while True:
                usage = await asyncio.to_thread(process_usage, server_pid) if server_pid else None
                sample = ResourceSample(
                    at_s=time.monotonic() - started,
                    rss_bytes=usage[0] if usage else None,
                    cpu_s=usage[1] if usage else None,
                    active_sessions=await active_sessions(client, http_url),
                    connections=tally.connections,
                    turns=tally.turns,
                    finals=tally.finals,
                    errors=tally.errors,
                )
                samples.append(sample)
                if on_sample is not None:
                    on_sample(sample)
                if stop.is_set():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), options.sample_every_s)

    stop = asyncio.Event()
    sampling = asyncio.create_task(sampler(stop))
    try:
        await asyncio.gather(*(caller(i) for i in range(options.streams)))
    finally:
        # One more sample once every caller is done: are the sessions released?
        await asyncio.sleep(1.0)
        stop.set()
        await sampling
    return SoakReport(options, time.monotonic() - started, reports, samples)
