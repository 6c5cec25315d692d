"""Soak: N callers for M minutes with random finalize/eou/close/hang-up behaviour.

Each caller loops over the five LibriVox clips of pocketsphinx-testdata (in random order)
at real-time pace (or `--speed`), and per turn picks at random (seeded by `--seed`): finalize
after the clip, let the end of utterance fire, close_stream and reconnect, or hang up in
the middle of an utterance (with or without a close frame) and reconnect; now and then
it sends a malformed text frame or a bad binary frame first. A quarter of the
connections stream Opus packets instead of linear16, a fifth use the legacy path. Every
final owed is accounted for (see `tests.support.soak`); the server's RSS and CPU are
sampled every `--sample-every` seconds.

Starts its own server (or pass --url and --key; then no RSS/CPU figures). Prints a table of
RSS over time and a summary that ends with `LOST FINALS: n`. Never fails: the exit code
is 0 whatever the figures.

    .venv/bin/python bench/soak.py --streams 8 --minutes 10
    .venv/bin/python bench/soak.py --streams 4 --minutes 1 --speed 2 --seed 7
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._server import add_server_args, bench_server
from tests.support.audio import corpus_wer, librivox_clips
from tests.support.soak import (
    SAMPLE_HEADER,
    ResourceSample,
    SoakClip,
    SoakOptions,
    SoakReport,
    format_report,
    run_soak,
    sample_row,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--speed", type=float, default=1.0, help="times real time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--sample-every", type=float, default=10.0, help="seconds")
    parser.add_argument("--warmup", type=float, default=30.0, help="seconds before RSS counts")
    parser.add_argument("--opus-share", type=float, default=0.25)
    add_server_args(parser, set_example="decode_workers=1")
    args = parser.parse_args()
    options = SoakOptions(
        streams=args.streams,
        duration_s=args.minutes * 60,
        speed=args.speed,
        seed=args.seed,
        sample_every_s=args.sample_every,
        opus_share=args.opus_share,
    )
    clips = [SoakClip.with_opus(c.audio, c.text) for c in librivox_clips()]
    print(
        f"{args.streams} streams x {args.minutes:g} min at {args.speed:g}x, seed {args.seed}: "
        f"{len(clips)} LibriVox clips, random finalize / eou / close / hang-up per turn",
        flush=True,
    )
    print(SAMPLE_HEADER + "\n" + "|---" * 8 + "|", flush=True)
    previous: list[ResourceSample] = []

    def show(sample: ResourceSample) -> None:
        print(sample_row(sample, previous[-1] if previous else None), flush=True)
        previous.append(sample)

    with bench_server(args) as srv:
        report = asyncio.run(
            run_soak(srv.ws, srv.key, clips, options, server_pid=srv.pid, on_sample=show)
        )
        log_problems = (
            None
            if srv.log is None
            else [
                line
                for line in srv.log.read_text().splitlines()
                if "ERROR" in line or "Traceback" in line
            ]
        )
    print()
    print(_summary(report, args.warmup))
    if log_problems is not None:
        print(f"server log lines with ERROR or Traceback: {len(log_problems)}")
        for line in log_problems[:10]:
            print("  " + line[:300])


def _summary(report: SoakReport, warmup_s: float) -> str:
    """format_report without its table (already printed live), plus the WER of the turns."""
    text = format_report(report, warmup_s=warmup_s)
    summary = text.split("\n\n", 1)[1]
    heard = [t for t in report.turns if t.reference]
    wer = corpus_wer([t.reference or "" for t in heard], [t.heard for t in heard])
    return summary + f"\nWER of the finished turns' finals: {wer:.3f} ({len(heard)} turns)"


if __name__ == "__main__":
    main()
