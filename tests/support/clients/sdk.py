"""The official SDK (`smallestai`), default options: its REST transcription of a file
(`client.waves.speech_to_text.transcribe`) and its streaming helper
(`smallestai.waves.helpers.stream_speech_to_text`). Runs in the clients' virtual environment
(tests/support/clients/__init__.py); prints one JSON object on stdout.

    sdk.py rest   --url http://127.0.0.1:PORT --key KEY --file audio.wav
    sdk.py stream --url http://127.0.0.1:PORT --key KEY --turn a.raw --turn b.raw [--gap 1.5]
        [--options '{"redact_pci": ["credit_card"], "vad": true}']

Turns are raw PCM16 little-endian mono 16 kHz. Only the environment (base URLs) and the key
differ from the SDK's defaults.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

from smallestai import SmallestAI
from smallestai.environment import SmallestAIEnvironment
from smallestai.waves.helpers import stream_speech_to_text
from smallestai.waves.speech_to_text import CloseStream

RATE = 16_000
CHUNK_MS = 50  # the cadence the Pulse docs recommend


def client(url: str, key: str) -> SmallestAI:
    ws = url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    environment = SmallestAIEnvironment(
        atoms=f"{url}/atoms/v1", waves=url, waves_ws=ws, payment=url
    )
    return SmallestAI(environment=environment, api_key=key)


def as_dict(model: object) -> object:
    dump = getattr(model, "model_dump", None)
    return dump(by_alias=True, exclude_none=True) if dump else model


def rest(args: argparse.Namespace) -> dict[str, object]:
    t0 = time.monotonic()
    response = client(args.url, args.key).waves.speech_to_text.transcribe(
        model="pulse", language="en", request=Path(args.file).read_bytes()
    )
    return {
        "class": type(response).__name__,
        "response": as_dict(response),
        "wall_s": round(time.monotonic() - t0, 3),
    }


def stream(args: argparse.Namespace) -> dict[str, object]:
    gap = b"\x00\x00" * int(args.gap * RATE)
    audio = gap.join(Path(p).read_bytes() for p in args.turn) + gap
    step = RATE * CHUNK_MS // 1000 * 2
    events: list[dict[str, object]] = []
    send_error: list[str] = []
    t0 = time.monotonic()
    # The helper's defaults: only `language` is required. --options names typed keywords
    # of the helper (JSON), for the tests about what it can send.
    options = {"language": "en", **json.loads(args.options)}
    with stream_speech_to_text(client(args.url, args.key), **options) as socket:

        def send() -> None:
            try:
                start = time.monotonic()
                for n, i in enumerate(range(0, len(audio), step)):
                    socket.send_audio_chunk_out(audio[i : i + step])
                    delay = start + (n + 1) * CHUNK_MS / 1000 / args.speed - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                # The typed message: a plain dict, as in the helper's docstring, fails in
                # the SDK (`_send_model` calls `.dict()` on it).
                socket.send_close_stream(CloseStream(type="close_stream"))
            except Exception as e:
                send_error.append(repr(e))

        sender = threading.Thread(target=send)
        sender.start()
        for event in socket:
            events.append(
                {
                    "t": round(time.monotonic() - t0, 3),
                    "class": type(event).__name__,
                    **as_dict(event),
                }
            )
            if getattr(event, "is_last", False):
                break
        sender.join()
    return {"events": events, "send_error": send_error, "wall_s": round(time.monotonic() - t0, 3)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    rest_parser = sub.add_parser("rest")
    rest_parser.add_argument("--file", required=True)
    stream_parser = sub.add_parser("stream")
    stream_parser.add_argument("--turn", action="append", required=True)
    stream_parser.add_argument("--gap", type=float, default=1.5)
    stream_parser.add_argument("--speed", type=float, default=2.0, help="times real time")
    stream_parser.add_argument("--options", default="{}", help="the helper's keywords, JSON")
    for p in (rest_parser, stream_parser):
        p.add_argument("--url", required=True)
        p.add_argument("--key", required=True)
    ns = parser.parse_args()
    print(json.dumps(rest(ns) if ns.command == "rest" else stream(ns), default=str))
