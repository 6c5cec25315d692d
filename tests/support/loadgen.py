"""Concurrent streaming load against any Pulse-compatible server, with latency figures.

Each simulated caller streams a list of clips at real-time pace in fixed-size frames of
linear16: a clip, a short silence, `{"type":"finalize"}`, a pause; `close_stream` at the
end. Per session we record when every audio position was sent and when every message
arrived, and derive:

- word emission lag: for each word of the finals, the time from the moment its end was
  sent to the first message (partial or final) that already contained it;
- first transcript: time from a clip's first frame to the first message with its words;
- finalize round trip: `finalize` sent → its `from_finalize` final received;
- close → is_last;
- lost / duplicated finals (one `from_finalize` final is owed per clip);
- WER of the finals against the clips' reference texts, when given.

Nothing here passes or fails; it only measures.
"""

from __future__ import annotations

import asyncio
import json
import re
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import websockets

from pulse_stt.client.sources import pcm16
from pulse_stt.protocol import MODEL_RATE as RATE

_EOU_MS = 5000  # the client marks turn ends with finalize; keep automatic finals out of it


@dataclass(frozen=True)
class LoadClip:
    audio: np.ndarray  # 16 kHz mono float32
    text: str | None = None  # reference transcript, for WER


@dataclass
class SessionFigures:
    word_lag: list[float] = field(default_factory=list)
    first_transcript: list[float] = field(default_factory=list)
    finalize_rtt: list[float] = field(default_factory=list)
    close_to_last: float | None = None
    finals_owed: int = 0
    finals_from_finalize: int = 0
    final_texts: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def normalize_word(word: str) -> str:
    """A word for comparison: lower case, without punctuation (apostrophes kept)."""
    return re.sub(r"[^\w']", "", word.lower())


async def run_session(
    url: str,
    key: str,
    clips: Sequence[LoadClip],
    *,
    frame_ms: int = 20,
    speed: float = 1.0,
    query: str = "",
) -> SessionFigures:
    """One caller. `url`: ws(s)://host:port of the server."""
    params = (
        f"model=pulse&language=en&encoding=linear16&sample_rate={RATE}"
        f"&word_timestamps=true&eou_timeout_ms={_EOU_MS}{query}"
    )
    figures = SessionFigures(finals_owed=len(clips))
    frame = RATE * frame_ms // 1000
    sent_at: list[tuple[float, float]] = []  # (audio seconds sent so far, wall time)
    arrivals: list[tuple[float, dict[str, Any]]] = []
    finalize_sent: list[float] = []
    clip_spans: list[tuple[float, float, float]] = []  # (audio start, audio end, wall start)
    close_sent: list[float] = []
    async with websockets.connect(
        f"{url}/waves/v1/stt/live?{params}",
        additional_headers={"Authorization": f"Bearer {key}"},
        max_size=None,
    ) as ws:

        async def send() -> None:
            start = time.monotonic()
            position = 0

            async def push(samples: np.ndarray) -> None:
                nonlocal position
                for i in range(0, samples.size, frame):
                    chunk = samples[i : i + frame]
                    await ws.send(pcm16(chunk))
                    position += chunk.size
                    sent_at.append((position / RATE, time.monotonic()))
                    ahead = position / RATE / speed - (time.monotonic() - start)
                    if ahead > 0:
                        await asyncio.sleep(ahead)

            for clip in clips:
                start_s = position / RATE
                clip_spans.append((start_s, start_s + clip.audio.size / RATE, time.monotonic()))
                await push(clip.audio)
                await push(np.zeros(int(0.3 * RATE), np.float32))
                finalize_sent.append(time.monotonic())
                await ws.send(json.dumps({"type": "finalize"}))
                await push(np.zeros(int(0.7 * RATE), np.float32))
            close_sent.append(time.monotonic())
            await ws.send(json.dumps({"type": "close_stream"}))

        sender = asyncio.create_task(send())
        try:
            async for raw in ws:
                message = json.loads(raw)
                arrivals.append((time.monotonic(), message))
        except websockets.ConnectionClosed:
            pass
        await sender
    _score(figures, arrivals, sent_at, finalize_sent, clip_spans, close_sent)
    return figures


def _wall_time_of(position: float, positions: np.ndarray, walls: np.ndarray) -> float:
    """When the frame holding audio second `position` was sent."""
    return float(walls[min(int(np.searchsorted(positions, position)), len(walls) - 1)])


def _score(
    figures: SessionFigures,
    arrivals: list[tuple[float, dict[str, Any]]],
    sent_at: list[tuple[float, float]],
    finalize_sent: list[float],
    clip_spans: list[tuple[float, float, float]],
    close_sent: list[float],
) -> None:
    transcriptions = [(t, m) for t, m in arrivals if m.get("type") == "transcription"]
    figures.errors = [m.get("message", "") for _, m in arrivals if m.get("type") == "error"]
    finals = [(t, m) for t, m in transcriptions if m.get("is_final")]
    from_finalize = [(t, m) for t, m in finals if m.get("from_finalize")]
    figures.finals_from_finalize = len(from_finalize)
    figures.final_texts = [m["transcript"] for _, m in finals if m.get("transcript")]
    for sent, (arrived, _) in zip(finalize_sent, from_finalize, strict=False):
        figures.finalize_rtt.append(arrived - sent)
    last = [t for t, m in finals if m.get("is_last")]
    if close_sent and last:
        figures.close_to_last = last[0] - close_sent[0]
    # Word lag: the first message (partial or final) that holds each final word.
    positions = np.array([p for p, _ in sent_at])
    walls = np.array([w for _, w in sent_at])
    for _, final in finals:
        for word in final.get("words", []):
            key = normalize_word(word["word"])
            first_seen = next(
                (
                    t
                    for t, m in transcriptions
                    for w in m.get("words", [])
                    if normalize_word(w["word"]) == key and abs(w["start"] - word["start"]) < 1.0
                ),
                None,
            )
            if first_seen is not None and key:
                figures.word_lag.append(first_seen - _wall_time_of(word["end"], positions, walls))
    for audio_start, audio_end, wall_start in clip_spans:
        first = next(
            (
                t
                for t, m in transcriptions
                if any(audio_start - 0.5 <= w["start"] < audio_end for w in m.get("words", []))
            ),
            None,
        )
        if first is not None:
            figures.first_transcript.append(first - wall_start)


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


@dataclass(frozen=True)
class LoadSummary:
    sessions: int
    word_lag_p50: float
    word_lag_p95: float
    first_transcript_p50: float
    finalize_p50: float
    finalize_p95: float
    close_to_last_p50: float
    lost_finals: int
    duplicated_finals: int
    errors: int
    final_texts: list[list[str]]


def summarize(results: Sequence[SessionFigures]) -> LoadSummary:
    lags = [x for r in results for x in r.word_lag]
    finalize = [x for r in results for x in r.finalize_rtt]
    closes = [r.close_to_last for r in results if r.close_to_last is not None]
    return LoadSummary(
        sessions=len(results),
        word_lag_p50=percentile(lags, 50),
        word_lag_p95=percentile(lags, 95),
        first_transcript_p50=percentile([x for r in results for x in r.first_transcript], 50),
        finalize_p50=percentile(finalize, 50),
        finalize_p95=percentile(finalize, 95),
        close_to_last_p50=statistics.median(closes) if closes else float("nan"),
        lost_finals=sum(max(0, r.finals_owed - r.finals_from_finalize) for r in results),
        duplicated_finals=sum(max(0, r.finals_from_finalize - r.finals_owed) for r in results),
        errors=sum(len(r.errors) for r in results),
        final_texts=[r.final_texts for r in results],
    )


async def run_load(
    url: str,
    key: str,
    clips: Sequence[LoadClip],
    sessions: int,
    *,
    frame_ms: int = 20,
    speed: float = 1.0,
    stagger_s: float = 0.25,
) -> LoadSummary:
    """`sessions` concurrent callers, each streaming all `clips`, started `stagger_s` apart."""

    async def caller(index: int) -> SessionFigures:
        await asyncio.sleep(index * stagger_s)
        rotated = list(clips[index % len(clips) :]) + list(clips[: index % len(clips)])
        return await run_session(url, key, rotated, frame_ms=frame_ms, speed=speed)

    results = await asyncio.gather(*(caller(i) for i in range(sessions)))
    return summarize(results)


TABLE_HEADER = (
    "| sessions | word lag p50 / p95 (s) | first transcript p50 (s) | finalize p50 / p95 (s) "
    "| close→is_last p50 (s) | lost / duplicated finals | errors |"
)


def table_row(summary: LoadSummary) -> str:
    s = summary
    return (
        f"| {s.sessions} | {s.word_lag_p50:.2f} / {s.word_lag_p95:.2f} "
        f"| {s.first_transcript_p50:.2f} | {s.finalize_p50:.2f} / {s.finalize_p95:.2f} "
        f"| {s.close_to_last_p50:.2f} | {s.lost_finals} / {s.duplicated_finals} | {s.errors} |"
    )
