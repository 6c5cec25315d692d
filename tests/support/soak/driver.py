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

Finals are matched to turns by their words' times (seconds from the connection's first
audio byte), so the accounting does not depend on when they arrive:

- lost: a finalize without its `from_finalize` final, a `close_stream` without `is_last`,
  an `eou` turn with no final holding its words;
- duplicated: more `from_finalize` / `is_last` finals than asked for, or a final that
  repeats a word (same word, same start) an earlier final already delivered;
- unheard: a finished turn of real speech whose words are in no final at all;
- unexpected errors: an `error` message no bad frame asked for (or more than asked for),
  a bad frame that got no `error`, a server message that is not JSON, and a connection
  the server closed with anything but 1000 after `close_stream`.

Refusals (HTTP 429/503 before the upgrade, or close 1008/1013 right after it) are counted,
not judged: the caller waits and tries again. The server's RSS and CPU are sampled from
/proc when its pid is known (same machine), its active sessions from `/metrics`.
Nothing here passes or fails; `SoakReport` says what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import httpx
import numpy as np
import websockets
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import InvalidStatus

from pulse_stt.audio.resample import MODEL_RATE as RATE
from pulse_stt.client.endpoints import Endpoints
from pulse_stt.client.sources import pcm16
from tests.support.loadgen import normalize_word

OPUS_PACKET_S = 0.02  # the packets made here are 20 ms each

Behaviour = Literal["finalize", "eou", "close", "drop", "drop_with_close"]
BEHAVIOURS: tuple[Behaviour, ...] = ("finalize", "eou", "close", "drop", "drop_with_close")
BadFrame = Literal["text", "opus", "noise"]

_FINALIZE_PAUSE_S = (0.3, 0.7)  # silence before and after finalize (as loadgen sends)
_EOU_MARGIN_S = 1.2  # silence beyond eou_timeout_ms, so the end of utterance surely fires
_TURN_SLACK_S = 0.3  # a word belongs to a turn if it starts within its clip ± this
_SAME_WORD_S = 0.02  # two finals with the same word starting this close: a duplicate
_REFUSED_CODES = (1008, 1013)  # too many sessions / try again later
_MALFORMED_TEXT = (
    "hello",
    "",
    "{",
    "[1, 2, 3]",
    '{"type": "bogus"}',
    '{"type": 5}',
    '{"kind": "finalize"}',
    '"finalize"',
    "null",
    '{"type": "FINALIZE "}',
)


@dataclass(frozen=True)
class SoakClip:
    """A recording to stream: 16 kHz mono float32, its reference text, its Opus packets."""

    audio: np.ndarray
    text: str | None = None
    opus: tuple[bytes, ...] = ()  # 20 ms packets of `audio`, for encoding=opus connections

    @classmethod
    def with_opus(cls, audio: np.ndarray, text: str | None = None) -> SoakClip:
        return cls(audio, text, opus_packets(audio))

    @cached_property
    def pcm(self) -> bytes:
        """`audio` as linear16, converted once (on first use) for every turn that sends it."""
        return pcm16(self.audio)


def opus_packets(audio: np.ndarray) -> tuple[bytes, ...]:
    """20 ms Opus packets of 16 kHz audio, from FFmpeg's libopus encoder (through PyAV)."""
    import av

    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = 24_000
    encoder.open()
    frame_size = int(RATE * OPUS_PACKET_S)
    pcm = np.frombuffer(pcm16(audio), "<i2")
    pcm = np.concatenate([pcm, np.zeros(-pcm.size % frame_size, np.int16)])
    packets: list[bytes] = []
    for start in range(0, pcm.size, frame_size):
        frame = av.AudioFrame.from_ndarray(
            pcm[None, start : start + frame_size], format="s16", layout="mono"
        )
        frame.sample_rate = RATE
        frame.pts = start
        packets += [bytes(p) for p in encoder.encode(frame)]
    packets += [bytes(p) for p in encoder.encode(None)]
    return tuple(packets)


def invalid_opus_packet(rng: random.Random) -> bytes:
    """A packet RFC 6716 (section 3.4) forbids, so every decoder must refuse it: code 3
    with no frames or more than 48, or code 2 whose first frame runs past the end."""
    kind = rng.randrange(3)
    config = rng.randrange(32) << 3
    if kind == 0:
        return bytes([config | 3, rng.choice((0x00, 0x40, 0x80))])  # code 3, M = 0
    if kind == 1:
        count = rng.randrange(49, 64)  # code 3, M > 48 (more than 120 ms)
        return bytes([config | 3, count]) + rng.randbytes(rng.randrange(0, 40))
    length = rng.randrange(60, 252)  # code 2: the first frame is longer than the packet
    return bytes([config | 2, length]) + rng.randbytes(rng.randrange(0, length // 2))


@dataclass(frozen=True)
class SoakOptions:
    streams: int = 4
    duration_s: float = 60.0
    speed: float = 1.0
    seed: int = 1
    frame_ms: int = 20  # linear16 frame size
    eou_timeout_ms: int = 800
    weights: tuple[float, ...] = (0.35, 0.25, 0.15, 0.125, 0.125)  # per BEHAVIOURS
    bad_frame_chance: float = 0.2  # per turn
    opus_share: float = 0.25  # connections that stream encoding=opus instead of linear16
    legacy_share: float = 0.2  # connections on /waves/v1/pulse/get_text
    final_timeout_s: float = 60.0  # longest wait for a final owed
    stagger_s: float = 0.5
    sample_every_s: float = 5.0


@dataclass
class TurnRecord:
    behaviour: Behaviour
    start_s: float  # where the clip starts on the connection's audio timeline
    end_s: float  # where what was sent of the clip ends
    reference: str | None
    bad_frame: BadFrame | None = None
    sent_at: float = 0.0  # wall time (monotonic) when the clip's last frame went out


@dataclass
class Arrival:
    at: float  # monotonic wall time
    message: dict[str, Any]


@dataclass
class TurnOutcome:
    behaviour: Behaviour
    reference: str | None  # None for a turn cut by hanging up (nothing is owed for it)
    heard: str  # words of all finals that fall in the turn, in time order
    final_delay_s: float | None  # clip's last frame sent → first final holding its words


@dataclass
class ConnectionReport:
    stream: int
    encoding: str
    path: str
    refused: str | None = None  # "http 503", "close 1013", ... (then nothing else applies)
    turns: list[TurnOutcome] = field(default_factory=list)
    finalizes: int = 0
    close_sent: bool = False
    ended: Literal["closed", "dropped", "dropped_with_close", "server_closed"] = "closed"
    close_code: int | None = None
    audio_s: float = 0.0
    finals: int = 0
    lost: int = 0
    duplicated: int = 0
    unheard: int = 0
    bad_frames: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)  # `error` field of error messages
    unexpected: list[str] = field(default_factory=list)
    finalize_rtt: list[float] = field(default_factory=list)
    retry_after_s: float = 1.0


def _finals(arrivals: Sequence[Arrival]) -> list[Arrival]:
    return [
        a
        for a in arrivals
        if a.message.get("type") == "transcription" and a.message.get("is_final")
    ]


def _word_starts(message: dict[str, Any]) -> list[float]:
    return [float(w.get("start", -1.0)) for w in message.get("words") or ()]


def _in_turn(start: float, turn: TurnRecord) -> bool:
    return turn.start_s - _TURN_SLACK_S <= start <= turn.end_s + _TURN_SLACK_S


def eou_covered(turn: TurnRecord, finals: Sequence[Arrival]) -> Arrival | None:
    """The first automatic final (neither from finalize nor is_last) with words of `turn`."""
    for arrival in finals:
        message = arrival.message
        if message.get("from_finalize") or message.get("is_last"):
            continue
        if any(_in_turn(s, turn) for s in _word_starts(message)):
            return arrival
    return None


def score_connection(
    report: ConnectionReport,
    turns: Sequence[TurnRecord],
    arrivals: Sequence[Arrival],
    finalize_sent_at: Sequence[float],
    *,
    expect_last: bool,
) -> None:
    """Fill `report`'s tallies from what was sent (`turns`, finalize times) and received."""
    finals = _finals(arrivals)
    report.finals = len(finals)
    from_finalize = [a for a in finals if a.message.get("from_finalize")]
    last = [a for a in finals if a.message.get("is_last")]
    owed = len(finalize_sent_at)
    report.lost += max(0, owed - len(from_finalize))
    report.duplicated += max(0, len(from_finalize) - owed)
    report.finalize_rtt = [
        a.at - sent for sent, a in zip(finalize_sent_at, from_finalize, strict=False)
    ]
    report.lost += max(0, int(expect_last) - len(last))
    report.duplicated += max(0, len(last) - int(expect_last))
    if last and arrivals[-1] is not last[0]:
        report.unexpected.append("a message arrived after is_last")
    # A word delivered twice (same word, same start) means a final was repeated.
    seen: list[tuple[str, float]] = []
    for arrival in finals:
        words = [
            (normalize_word(w.get("word", "")), float(w.get("start", -1.0)))
            for w in arrival.message.get("words") or ()
        ]
        if any(
            word and word == other and abs(start - other_start) <= _SAME_WORD_S
            for word, start in words
            for other, other_start in seen
        ):
            report.duplicated += 1
        seen += words
    for turn in turns:
        if turn.behaviour in ("drop", "drop_with_close"):
            report.turns.append(TurnOutcome(turn.behaviour, None, "", None))  # nothing owed
            continue
        holding = [a for a in finals if any(_in_turn(s, turn) for s in _word_starts(a.message))]
        if turn.behaviour == "eou" and eou_covered(turn, finals) is None:
            report.lost += 1
        elif not holding:
            report.unheard += 1
        words = sorted(
            (float(w.get("start", 0.0)), str(w.get("word", "")))
            for a in holding
            for w in a.message.get("words") or ()
            if _in_turn(float(w.get("start", -1.0)), turn)
        )
        report.turns.append(
            TurnOutcome(
                turn.behaviour,
                turn.reference,
                " ".join(w for _, w in words),
                holding[0].at - turn.sent_at if holding else None,
            )
        )
    report.errors = Counter(
        str(a.message.get("error") or "unknown")
        for a in arrivals
        if a.message.get("type") == "error"
    )
    asked = Counter(
        {"bad_message": report.bad_frames["text"], "bad_audio": report.bad_frames["opus"]}
    )
    for kind, count in report.errors.items():
        if count > asked[kind]:
            report.unexpected.append(f"{count - asked[kind]} unasked error(s) {kind!r}")
    for kind, count in asked.items():
        if report.errors[kind] < count:
            report.unexpected.append(f"{count - report.errors[kind]} bad frame(s) got no {kind!r}")
    if report.ended == "server_closed" and not report.refused:
        report.unexpected.append(f"the server closed the connection with {report.close_code}")
    elif report.ended == "closed" and report.close_code != 1000:
        report.unexpected.append(f"closed with {report.close_code} after close_stream, not 1000")


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
            and not _finals(self._arrivals)
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
            await ws.send(rng.choice(_MALFORMED_TEXT))
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
        finals = _finals(self._arrivals)
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


@dataclass(frozen=True)
class ResourceSample:
    at_s: float  # since the soak started
    rss_bytes: int | None  # the server's resident memory (VmRSS), when its pid is known
    cpu_s: float | None  # the server's CPU time so far (user + system)
    active_sessions: float | None  # from the server's /metrics, when it serves them
    connections: int
    turns: int
    finals: int
    errors: int


def process_usage(pid: int) -> tuple[int, float]:
    """(resident bytes, CPU seconds used) of a process on this machine, from /proc."""
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return rss_kb * 1024, (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime ticks


async def active_sessions(client: httpx.AsyncClient, http_url: str) -> float | None:
    """Sum of `pulse_stt_active_sessions` on the server's /metrics (None if not served)."""
    try:
        response = await client.get(f"{http_url}/metrics", timeout=5)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        values = [
            sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == "pulse_stt_active_sessions"
        ]
    except ValueError:  # not the Prometheus text format
        return None
    return sum(values) if values else None


def http_base(ws_url: str) -> str:
    """The http(s):// base of a ws(s):// server URL."""
    return Endpoints.from_base_url(ws_url).http("")


@dataclass
class SoakReport:
    options: SoakOptions
    wall_s: float
    connections: list[ConnectionReport]
    samples: list[ResourceSample]

    @property
    def served(self) -> list[ConnectionReport]:
        return [c for c in self.connections if not c.refused]

    @property
    def lost_finals(self) -> int:
        return sum(c.lost for c in self.served)

    @property
    def duplicated_finals(self) -> int:
        return sum(c.duplicated for c in self.served)

    @property
    def unheard_turns(self) -> int:
        return sum(c.unheard for c in self.served)

    @property
    def unexpected(self) -> list[str]:
        return [
            f"stream {c.stream}: {problem}" for c in self.connections for problem in c.unexpected
        ]

    @property
    def refusals(self) -> Counter[str]:
        return Counter(str(c.refused) for c in self.connections if c.refused)

    @property
    def turns(self) -> list[TurnOutcome]:
        return [t for c in self.served for t in c.turns]

    @property
    def endings(self) -> Counter[str]:
        return Counter(
            c.ended if c.ended.startswith("dropped") else f"{c.ended} {c.close_code}"
            for c in self.served
        )

    def rss_after_warmup(self, warmup_s: float) -> tuple[int, int, int] | None:
        """(first RSS sample at or after `warmup_s`, peak after it, last sample), in bytes."""
        after = [s.rss_bytes for s in self.samples if s.at_s >= warmup_s and s.rss_bytes]
        if not after:
            return None
        return after[0], max(after), after[-1]


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


def _mb(value: int | None) -> str:
    return f"{value / 2**20:.0f}" if value else "-"


SAMPLE_HEADER = (
    "| t (s) | server RSS (MB) | server CPU (cores) | active sessions | connections | turns "
    "| finals | errors |"
)


def sample_row(sample: ResourceSample, previous: ResourceSample | None) -> str:
    cpu = "-"
    if previous and sample.cpu_s is not None and previous.cpu_s is not None:
        cpu = f"{(sample.cpu_s - previous.cpu_s) / max(1e-6, sample.at_s - previous.at_s):.2f}"
    active = "-" if sample.active_sessions is None else f"{sample.active_sessions:.0f}"
    return (
        f"| {sample.at_s:.0f} | {_mb(sample.rss_bytes)} | {cpu} | {active} "
        f"| {sample.connections} | {sample.turns} | {sample.finals} | {sample.errors} |"
    )


def _p(values: Sequence[float], q: float) -> str:
    return f"{float(np.percentile(values, q)):.2f}" if values else "-"


def format_report(report: SoakReport, *, warmup_s: float = 15.0) -> str:
    """The RSS table and the summary, ending with the line `LOST FINALS: n`."""
    o = report.options
    lines = [SAMPLE_HEADER, "|---" * 8 + "|"]
    previous = None
    for sample in report.samples:
        lines.append(sample_row(sample, previous))
        previous = sample
    served, turns = report.served, report.turns
    behaviours = Counter(t.behaviour for t in turns)
    bad = sum((c.bad_frames for c in served), Counter[str]())
    errors = sum((c.errors for c in served), Counter[str]())
    finalize_rtt = [x for c in served for x in c.finalize_rtt]
    eou_delay = [t.final_delay_s for t in turns if t.behaviour == "eou" and t.final_delay_s]
    encodings = Counter(c.encoding for c in served)
    lines += [
        "",
        f"{o.streams} streams for {o.duration_s:.0f} s at {o.speed:g}x real time, seed {o.seed}; "
        f"ran {report.wall_s:.0f} s",
        f"connections: {len(served)} served ({_counts(encodings)}), "
        f"refused: {_counts(report.refusals) or 0}",
        f"endings: {_counts(report.endings)}",
        f"turns: {len(turns)} ({_counts(behaviours)}); audio sent "
        f"{sum(c.audio_s for c in served) / 60:.1f} min",
        f"finals received: {sum(c.finals for c in served)}; finalize round trip p50/p95 "
        f"{_p(finalize_rtt, 50)} / {_p(finalize_rtt, 95)} s; eou final after clip end "
        f"p50/p95 {_p(eou_delay, 50)} / {_p(eou_delay, 95)} s",
        f"bad frames sent: {_counts(bad) or 0}; errors received: {_counts(errors) or 0}",
    ]
    rss = report.rss_after_warmup(warmup_s)
    if rss:
        first, peak, last = rss
        lines.append(
            f"server RSS after {warmup_s:g} s warm-up: first {_mb(first)} MB, peak {_mb(peak)} "
            f"MB, last {_mb(last)} MB (last/first {last / first:.2f})"
        )
    unexpected = report.unexpected
    lines += [
        f"unexpected errors: {len(unexpected)}",
        *(f"  {problem}" for problem in unexpected[:20]),
        f"unheard turns: {report.unheard_turns}",
        f"DUPLICATED FINALS: {report.duplicated_finals}",
        f"LOST FINALS: {report.lost_finals}",
    ]
    return "\n".join(lines)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counter.items()))
