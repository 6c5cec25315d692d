"""Is the cost of a second of audio flat over a long session? One stream, M minutes.

Streams the five LibriVox clips of pocketsphinx-testdata over and over (with `finalize`
after each, as `bench/concurrent_streams.py` does) for `--minutes` of audio at `--speed`
times real time against a server started here, sampling the server's RSS and CPU. Prints
one row per `--bucket` minutes of audio: finalize round trip and word lag (medians), server
CPU seconds per audio second, and RSS at the bucket's end. Flat rows mean no growing
buffers or prompts. Never fails on figures.

    .venv/bin/python bench/long_session.py --minutes 30 --speed 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.concurrent_streams import _proc_stats
from tests.support.audio import librivox_clips
from tests.support.loadgen import LoadClip, run_session
from tests.support.server import running_server

_GAP_S = 1.0  # the load generator's silence around each finalize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--speed", type=float, default=3.0)
    parser.add_argument("--bucket", type=float, default=5.0, help="minutes of audio per row")
    args = parser.parse_args()
    library = [LoadClip(c.audio, c.text) for c in librivox_clips()]
    cycle_s = sum(c.audio.size for c in library) / 16_000 + _GAP_S * len(library)
    cycles = max(1, round(args.minutes * 60 / cycle_s))
    clips = library * cycles
    samples: list[tuple[float, float, int]] = []  # (wall, cpu seconds, rss)
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp)) as server:
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                cpu, rss = _proc_stats(server.pid)
                samples.append((time.monotonic(), cpu, rss))
                time.sleep(1.0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        figures = asyncio.run(run_session(server.ws, server.key, clips, speed=args.speed, query=""))
        stop.set()
        sampler.join()
    print(
        f"{len(clips)} clips ({cycles * cycle_s / 60:.1f} min of audio) at {args.speed:g}x, "
        f"one session, finalize after each clip"
    )
    print("| audio minutes | finalize p50 (s) | word lag p50 (s) | CPU s per audio s | RSS (MB) |")
    print("|---|---|---|---|---|")
    per_clip = len(figures.finalize_rtt) / max(1, len(clips))
    clips_per_bucket = max(1, round(args.bucket * 60 / cycle_s * len(library)))
    words_per_clip = len(figures.word_lag) / max(1, len(clips))
    for first in range(0, len(clips), clips_per_bucket):
        last = min(first + clips_per_bucket, len(clips))
        rtt = figures.finalize_rtt[round(first * per_clip) : round(last * per_clip)]
        lag = figures.word_lag[round(first * words_per_clip) : round(last * words_per_clip)]
        t0 = started + first * cycle_s / len(library) / args.speed
        t1 = started + last * cycle_s / len(library) / args.speed
        window = [s for s in samples if t0 <= s[0] <= t1]
        if len(window) < 2:
            continue
        cpu_per_s = (window[-1][1] - window[0][1]) / ((window[-1][0] - window[0][0]) * args.speed)
        print(
            f"| {first * cycle_s / len(library) / 60:.1f}-{last * cycle_s / len(library) / 60:.1f} "
            f"| {statistics.median(rtt) if rtt else float('nan'):.2f} "
            f"| {statistics.median(lag) if lag else float('nan'):.2f} "
            f"| {cpu_per_s:.3f} | {window[-1][2] / 2**20:.0f} |",
            flush=True,
        )
    print(
        f"lost finals: {figures.finals_owed - figures.finals_from_finalize}, "
        f"errors: {len(figures.errors)}"
    )


if __name__ == "__main__":
    main()
