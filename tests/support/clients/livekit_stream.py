"""LiveKit Agents' Smallest AI plugin (`livekit-plugins-smallestai`), default options, driven
outside a room: `STT.stream()` fed `rtc.AudioFrame`s of each turn in real time with silence
between, every `SpeechEvent` collected. Runs in the clients' virtual environment
(tests/support/clients/__init__.py); prints one JSON object on stdout.

    livekit_stream.py --base-url http://127.0.0.1:PORT/waves/v1 --key KEY \
        --turn a.raw --turn b.raw [--gap 2.5] [--tail 2.0] [--batch]

Each turn is raw PCM16 little-endian mono 16 kHz. Only `base_url` and `api_key` differ from
the plugin's defaults; the aiohttp session is the one a LiveKit job would otherwise lend.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

import aiohttp
from livekit import rtc
from livekit.agents import stt as agents_stt
from livekit.plugins import smallestai

RATE = 16_000
FRAME_MS = 20  # what a LiveKit room track delivers: 10-20 ms frames
FRAME_SAMPLES = RATE * FRAME_MS // 1000


def frames(pcm: bytes) -> list[rtc.AudioFrame]:
    step = FRAME_SAMPLES * 2
    out = []
    for i in range(0, len(pcm), step):
        chunk = pcm[i : i + step]
        if len(chunk) < step:
            chunk += b"\x00" * (step - len(chunk))
        out.append(
            rtc.AudioFrame(
                data=chunk, sample_rate=RATE, num_channels=1, samples_per_channel=FRAME_SAMPLES
            )
        )
    return out


async def main(args: argparse.Namespace, turns: list[bytes]) -> dict[str, object]:
    silence_gap = b"\x00\x00" * int(args.gap * RATE)
    timeline = b""
    for i, speech in enumerate(turns):
        timeline += (silence_gap if i else b"\x00\x00" * int(0.5 * RATE)) + speech
    timeline += b"\x00\x00" * int(args.tail * RATE)

    events: list[dict[str, object]] = []
    errors: list[dict[str, object]] = []
    t0 = time.monotonic()
    async with aiohttp.ClientSession() as http:
        plugin = smallestai.STT(base_url=args.base_url, api_key=args.key, http_session=http)

        @plugin.on("error")
        def _on_error(error: agents_stt.STTError) -> None:
            errors.append(
                {
                    "t": round(time.monotonic() - t0, 3),
                    "error": repr(error.error),
                    "recoverable": error.recoverable,
                }
            )

        if args.batch:
            # The plugin's batch path (what a non-streaming agent uses): one POST of a WAV.
            speech = rtc.AudioFrame(
                data=timeline,
                sample_rate=RATE,
                num_channels=1,
                samples_per_channel=len(timeline) // 2,
            )
            event = await plugin.recognize(buffer=speech)
            return {
                "type": event.type.value,
                "text": event.alternatives[0].text if event.alternatives else None,
                "language": str(event.alternatives[0].language) if event.alternatives else None,
                "errors": errors,
                "wall_s": round(time.monotonic() - t0, 3),
            }

        stream = plugin.stream()

        async def feed() -> None:
            start = time.monotonic()
            for n, frame in enumerate(frames(timeline)):
                stream.push_frame(frame)
                # Real time, as a room track delivers it.
                delay = start + (n + 1) * FRAME_MS / 1000 - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            stream.end_input()

        feeder = asyncio.create_task(feed())
        exception = None
        try:
            async for event in stream:
                entry: dict[str, object] = {
                    "t": round(time.monotonic() - t0, 3),
                    "type": event.type.value,
                }
                if event.alternatives:
                    entry["text"] = event.alternatives[0].text
                events.append(entry)
        except Exception as e:  # the plugin gave up: reported, not raised
            exception = repr(e)
        await feeder
        await stream.aclose()
    return {
        "events": events,
        "errors": errors,
        "exception": exception,
        "audio_s": len(timeline) / 2 / RATE,
        "wall_s": round(time.monotonic() - t0, 3),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--turn", action="append", required=True)
    parser.add_argument("--gap", type=float, default=2.5)
    parser.add_argument("--tail", type=float, default=2.0)
    parser.add_argument("--batch", action="store_true", help="recognize() instead of stream()")
    ns = parser.parse_args()
    print(json.dumps(asyncio.run(main(ns, [Path(p).read_bytes() for p in ns.turn]))))
