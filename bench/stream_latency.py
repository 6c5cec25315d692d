"""Single-stream latency and cost of pulse-stt on real recordings. Prints figures; never fails.

Starts the real server (or uses --url/--key of a running one), streams the LibriVox clips of
pocketsphinx-testdata at real-time pace in 20 ms frames, one turn per clip followed by
silence, and measures per turn:

- first partial: time from the turn's first audio frame to its first partial,
- eou final: time from the end of the turn's speech to its final (includes eou_timeout_ms),
- finalize round trip: a second pass over the same clips, `finalize` sent right after each
  clip's last frame, time until the `from_finalize` final arrives,
- turn end as a voice agent feels it: a third pass with `endpointing=true&endpointing_timeout=300`
  (the LiveKit plugin's default) in 100 ms frames over the LibriVox and card clips, time from
  the frame holding the end of the clip's last word (its last loud 10 ms) to the turn's final.

Then it decodes the same clips offline with plain faster-whisper (same model, same process)
as the baseline for speed (real-time factor) and WER. Medians over --runs repetitions.

    .venv/bin/python bench/stream_latency.py --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.audio import card_clips, librivox_clips, pcm16, silence, wer

FRAME = 640  # 20 ms of 16 kHz linear16
EOU_MS = 800
TURN_END_QUERY = "&endpointing=true&endpointing_timeout=300"
TURN_END_FRAME = 3200  # 100 ms


async def stream_turns(
    url: str, key: str, clips, *, use_finalize: bool, extra: str = ""
) -> dict[str, list[float]]:
    """Real-time pace; returns latency lists and the final text per turn."""
    eou = 5000 if use_finalize else EOU_MS  # with finalize, the client marks turn ends
    query = f"model=pulse&language=en&sample_rate=16000&encoding=linear16&eou_timeout_ms={eou}"
    query += extra
    figures: dict[str, list[float]] = {"first_partial": [], "final": [], "texts": []}
    async with websockets.connect(
        f"{url}/waves/v1/stt/live?{query}", additional_headers={"Authorization": f"Bearer {key}"}
    ) as ws:
        turn_start: dict[int, float] = {}
        speech_end: dict[int, float] = {}
        done = asyncio.Event()

        async def receive() -> None:
            turn = 0
            async for raw in ws:
                message = json.loads(raw)
                if message.get("type") != "transcription":
                    continue
                now = time.monotonic()
                if message["is_last"]:
                    break
                if not message["is_final"]:
                    if turn in turn_start and len(figures["first_partial"]) == turn:
                        figures["first_partial"].append(now - turn_start[turn])
                    continue
                if message["transcript"] or message["from_finalize"]:
                    figures["final"].append(now - speech_end[turn])
                    figures["texts"].append(message["transcript"])
                    if len(figures["first_partial"]) == turn:
                        figures["first_partial"].append(float("nan"))
                    turn += 1
            done.set()

        receiver = asyncio.create_task(receive())
        start = time.monotonic()
        sent = 0
        for index, clip in enumerate(clips):
            pause = silence(0.2 if use_finalize else 1.5)
            for part, is_speech in ((clip.audio, True), (pause, False)):
                pcm = pcm16(part)
                if is_speech:
                    turn_start[index] = time.monotonic()
                for i in range(0, len(pcm), FRAME):
                    await ws.send(pcm[i : i + FRAME])
                    sent += len(pcm[i : i + FRAME])
                    ahead = sent / 32000 - (time.monotonic() - start)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                if is_speech:
                    speech_end[index] = time.monotonic()
                    if use_finalize:
                        await ws.send(json.dumps({"type": "finalize"}))
        await ws.send(json.dumps({"type": "close_stream"}))
        await asyncio.wait_for(done.wait(), 120)
        receiver.cancel()
    return figures


def speech_end_s(audio: np.ndarray) -> float:
    """Where a clip's last word ends: the end of its last 10 ms louder than a tenth of its
    loud level (the clips' trailing room noise is far below that)."""
    n = audio.size // 160
    rms = np.sqrt((audio[: n * 160].reshape(n, 160) ** 2).mean(axis=1))
    loud = np.flatnonzero(rms > 0.1 * np.percentile(rms, 95))
    return (int(loud[-1]) + 1) * 0.01 if loud.size else audio.size / 16000


async def stream_turn_end(
    url: str, key: str, clips, *, extra: str = ""
) -> tuple[list[float], list[str]]:
    """Turn end with endpointing: per clip, the final's arrival minus when the frame holding
    the clip's speech end was sent (real-time pace, 100 ms frames, 1.5 s pause after each);
    and the finals' texts."""
    query = "model=pulse&language=en&sample_rate=16000&encoding=linear16" + TURN_END_QUERY
    ends: list[float] = []
    async with websockets.connect(
        f"{url}/waves/v1/stt/live?{query}{extra}",
        additional_headers={"Authorization": f"Bearer {key}"},
    ) as ws:

        async def receive() -> list[tuple[float, str]]:
            arrivals: list[tuple[float, str]] = []
            async for raw in ws:
                message = json.loads(raw)
                if message.get("type") != "transcription" or message["is_last"]:
                    if message.get("is_last"):
                        break
                    continue
                if message["is_final"] and message["transcript"]:
                    arrivals.append((time.monotonic(), message["transcript"]))
            return arrivals

        receiver = asyncio.create_task(receive())
        start = time.monotonic()
        sent = 0
        for clip in clips:
            pcm = pcm16(np.concatenate([clip.audio, silence(1.5)]))
            end_byte = sent + 2 * round(speech_end_s(clip.audio) * 16000)
            marked = False
            for i in range(0, len(pcm), TURN_END_FRAME):
                await ws.send(pcm[i : i + TURN_END_FRAME])
                sent += len(pcm[i : i + TURN_END_FRAME])
                if not marked and sent >= end_byte:
                    ends.append(time.monotonic())
                    marked = True
                ahead = sent / 32000 - (time.monotonic() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await ws.send(json.dumps({"type": "close_stream"}))
        arrivals = await asyncio.wait_for(receiver, 120)
    # One final per clip (each clip is one turn); a missing or split one is not scored.
    if len(arrivals) != len(ends):
        print(f"turn end: {len(arrivals)} finals for {len(ends)} turns; run not scored")
        return [], [text for _, text in arrivals]
    return [a - e for (a, _), e in zip(arrivals, ends, strict=True)], [t for _, t in arrivals]


def offline_baseline(clips) -> tuple[float, str]:
    from faster_whisper import WhisperModel

    from pulse_stt.config import Settings
    from pulse_stt.engine.model_store import resolve_model_dir

    model = WhisperModel(str(resolve_model_dir("base", Settings().cache_dir)), compute_type="int8")
    t0 = time.monotonic()
    text = " ".join(
        " ".join(s.text for s in model.transcribe(c.audio, language="en")[0]) for c in clips
    )
    return time.monotonic() - t0, text


def median(values: list[float]) -> float:
    clean = [v for v in values if v == v]
    return statistics.median(clean) if clean else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--verbose", action="store_true", help="print the eou finals")
    parser.add_argument("--url", help="ws://host:port of a running server (default: start one)")
    parser.add_argument("--key", default="pstt_bench_key_0123456789")
    parser.add_argument(
        "--query", default="", help="extra parameters, e.g. '&diarize=true&word_timestamps=true'"
    )
    args = parser.parse_args()
    clips = librivox_clips()
    reference = " ".join(c.text for c in clips)
    turn_end_reference = " ".join(c.text for c in clips + card_clips())
    audio_seconds = sum(c.audio.size for c in clips) / 16000

    if args.url:
        url, server = args.url, None
    else:
        from tests.support.server import running_server

        server = running_server(Path(tempfile.mkdtemp()), api_key=args.key, log_level="warning")
        url = server.__enter__().ws
    try:
        eou, fin = {"first_partial": [], "final": []}, {"final": []}
        turn_end: list[float] = []
        turn_end_wers: list[float] = []
        wers = []
        for _ in range(args.runs):
            got = asyncio.run(
                stream_turns(url, args.key, clips, use_finalize=False, extra=args.query)
            )
            eou["first_partial"] += got["first_partial"]
            eou["final"] += got["final"]
            wers.append(wer(reference, " ".join(got["texts"])))
            if args.verbose:
                print("eou finals:", " | ".join(got["texts"]), flush=True)
            got = asyncio.run(
                stream_turns(url, args.key, clips, use_finalize=True, extra=args.query)
            )
            fin["final"] += got["final"]
            waits, texts = asyncio.run(
                stream_turn_end(url, args.key, clips + card_clips(), extra=args.query)
            )
            turn_end += waits
            turn_end_wers.append(wer(turn_end_reference, " ".join(texts)))
    finally:
        if server is not None:
            server.__exit__(None, None, None)
    offline_s, offline_text = offline_baseline(clips)
    print(
        f"audio: {len(clips)} LibriVox turns, {audio_seconds:.1f} s; {args.runs} runs; "
        f"real-time pace, 20 ms frames, eou_timeout_ms={EOU_MS}"
    )
    print(f"{'metric':<44}{'p50':>8}{'p95':>8}")
    for name, values in (
        ("first partial after turn start (s)", eou["first_partial"]),
        ("final after end of speech, eou (s)", eou["final"]),
        ("final after end of speech - eou timeout (s)", [v - EOU_MS / 1000 for v in eou["final"]]),
        ("finalize -> final round trip (s)", fin["final"]),
        ("turn end, endpointing_timeout=300 (s)", turn_end),
    ):
        clean = sorted(v for v in values if v == v)
        p95 = clean[min(len(clean) - 1, int(0.95 * len(clean)))] if clean else float("nan")
        print(f"{name:<44}{median(values):>8.3f}{p95:>8.3f}")
    print(f"streaming WER of finals (median of runs)     {statistics.median(wers):.3f}")
    print(f"WER of the turn-end pass's finals (median)   {statistics.median(turn_end_wers):.3f}")
    print(f"offline faster-whisper WER (beam 5)          {wer(reference, offline_text):.3f}")
    print(f"offline faster-whisper real-time factor      {offline_s / audio_seconds:.3f}")


if __name__ == "__main__":
    main()
