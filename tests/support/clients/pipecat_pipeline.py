"""Pipecat's `SmallestSTTService` (`pipecat-ai[smallest]`), default settings, in a minimal
pipeline: audio frames in real time with the VAD frames Pipecat's VAD and turn strategy
would emit around each turn, a long hold without audio between turns, every
`TranscriptionFrame` and `ErrorFrame` collected. Runs in the clients' virtual environment
(tests/support/clients/__init__.py); prints one JSON object on stdout.

    pipecat_pipeline.py --base-url ws://127.0.0.1:PORT --key KEY \
        --turn a.raw --turn b.raw [--hold 14] [--settle 2.5] [--model pulse-2]

Each turn is raw PCM16 little-endian mono 16 kHz. Only `base_url` and `api_key` differ from
the service's defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from loguru import logger
from pipecat.frames.frames import (
    EndFrame,
    ErrorFrame,
    Frame,
    InputAudioRawFrame,
    InterimTranscriptionFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    VADUserStartedSpeakingFrame,
    VADUserStoppedSpeakingFrame,
)
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
from pipecat.services.smallest.stt import SmallestSTTService
from pipecat.workers.runner import WorkerRunner

RATE = 16_000
FRAME_MS = 20
FRAME_BYTES = RATE * FRAME_MS // 1000 * 2
# Pipecat's VADParams defaults: speech confirmed after start_secs, ended after stop_secs.
VAD_START_S = 0.2
VAD_STOP_S = 0.2


class Collector(FrameProcessor):
    """Records the frames that pass it in `direction` (and passes everything on)."""

    def __init__(self, record: list[dict[str, object]], direction: FrameDirection, t0: float):
        super().__init__()
        self._record, self._direction, self._t0 = record, direction, t0

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        await super().process_frame(frame, direction)
        if direction == self._direction:
            entry: dict[str, object] = {
                "t": round(time.monotonic() - self._t0, 3),
                "frame": type(frame).__name__,
            }
            if isinstance(frame, (TranscriptionFrame, InterimTranscriptionFrame)):
                entry["text"] = frame.text
            if isinstance(frame, ErrorFrame):
                entry["error"] = frame.error
            if isinstance(frame, (TranscriptionFrame, InterimTranscriptionFrame, ErrorFrame)):
                self._record.append(entry)
        await self.push_frame(frame, direction)


async def main(args: argparse.Namespace, turns: list[bytes]) -> dict[str, object]:
    logger.remove()
    logger.add(sys.stderr, level="DEBUG")
    t0 = time.monotonic()
    down: list[dict[str, object]] = []
    up: list[dict[str, object]] = []
    pipeline_errors: list[str] = []
    connection_events: list[dict[str, object]] = []

    # Defaults, unless a test names the one setting it is about (--model pulse-2).
    settings = SmallestSTTService.Settings(model=args.model) if args.model else None
    stt = SmallestSTTService(api_key=args.key, base_url=args.base_url, settings=settings)
    for name in ("on_connected", "on_disconnected", "on_connection_error"):

        def handler(_service: object, *rest: object, name: str = name) -> None:
            connection_events.append(
                {
                    "t": round(time.monotonic() - t0, 3),
                    "event": name,
                    "args": [str(r) for r in rest],
                }
            )

        stt.add_event_handler(name, handler)

    pipeline = Pipeline(
        [
            Collector(up, FrameDirection.UPSTREAM, t0),
            stt,
            Collector(down, FrameDirection.DOWNSTREAM, t0),
        ]
    )
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=RATE),
        cancel_on_idle_timeout=False,
    )
    started = asyncio.Event()

    @worker.event_handler("on_pipeline_started")
    async def _started(_worker: object, _frame: Frame) -> None:
        started.set()

    @worker.event_handler("on_pipeline_error")
    async def _error(_worker: object, frame: ErrorFrame) -> None:
        pipeline_errors.append(frame.error)

    async def realtime_audio(pcm: bytes) -> None:
        start = time.monotonic()
        for n, i in enumerate(range(0, len(pcm), FRAME_BYTES)):
            chunk = pcm[i : i + FRAME_BYTES]
            await worker.queue_frame(
                InputAudioRawFrame(audio=chunk, sample_rate=RATE, num_channels=1)
            )
            delay = start + (n + 1) * FRAME_MS / 1000 - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    def silence(seconds: float) -> bytes:
        return b"\x00\x00" * int(seconds * RATE)

    async def drive() -> None:
        await asyncio.wait_for(started.wait(), timeout=30)
        for i, speech in enumerate(turns):
            if i:
                # The hold: the transport delivers no audio at all (a muted or
                # disconnected participant); only the service's own keepalive runs.
                await asyncio.sleep(args.hold)
            split = int(VAD_START_S * RATE) * 2
            await realtime_audio(silence(0.3))
            await realtime_audio(speech[:split])
            # The VAD confirms speech start_secs into the turn; the turn strategy follows.
            await worker.queue_frame(VADUserStartedSpeakingFrame(start_secs=VAD_START_S))
            await worker.queue_frame(UserStartedSpeakingFrame())
            await realtime_audio(speech[split:])
            await realtime_audio(silence(VAD_STOP_S))
            await worker.queue_frame(VADUserStoppedSpeakingFrame(stop_secs=VAD_STOP_S))
            await worker.queue_frame(UserStoppedSpeakingFrame())
            await realtime_audio(silence(0.5))
        await asyncio.sleep(args.settle)
        await worker.queue_frame(EndFrame())

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await asyncio.gather(runner.run(), drive())
    return {
        "transcripts": [e for e in down if e["frame"] == "TranscriptionFrame"],
        "interims": sum(1 for e in down if e["frame"] == "InterimTranscriptionFrame"),
        "error_frames": [e for e in up + down if e["frame"] == "ErrorFrame"],
        "pipeline_errors": pipeline_errors,
        "connection_events": connection_events,
        "wall_s": round(time.monotonic() - t0, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--turn", action="append", required=True)
    parser.add_argument("--hold", type=float, default=14.0)
    parser.add_argument("--settle", type=float, default=2.5)
    parser.add_argument("--model", help="SmallestSTTService.Settings(model=...); default: none")
    ns = parser.parse_args()
    print(json.dumps(asyncio.run(main(ns, [Path(p).read_bytes() for p in ns.turn]))))
