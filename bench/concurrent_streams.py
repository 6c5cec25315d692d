"""N concurrent real-time streams against one server: latency, finals, WER, CPU, RSS.

Every session streams the five LibriVox clips of pocketsphinx-testdata (24.7 s; or with
`--clips corpus` every clip of `tests/support/audio.wer_corpus`) at
real-time pace in 20 ms frames, with `finalize` after each clip, sessions started 0.25 s
apart (each starts at a different clip). The server is started here (or pass --url/--key
and no CPU/RSS figures are taken). Prints one row per session count; never fails.
`--files` streams your own recordings instead (any container; no WER then), e.g. against a
deployed server:

    .venv/bin/python bench/concurrent_streams.py --sessions 1 2 4 8
    .venv/bin/python bench/concurrent_streams.py --files call.wav --url ws://host:8000 \
        --key KEY --sessions 1 4 8
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

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._server import add_server_args, bench_server
from tests.support.audio import Clip, librivox_clips, offline_texts, wer, wer_corpus
from tests.support.loadgen import TABLE_HEADER, LoadClip, run_load, table_row

_TICK = 0.5


def _proc_stats(pid: int) -> tuple[float, int]:
    """(CPU seconds used, RSS bytes) of a process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    rss_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return ticks / 100.0, rss_pages * 4096


class _Sampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_rss = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.peak_rss = max(self.peak_rss, _proc_stats(self.pid)[1])
            time.sleep(_TICK)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--frame-ms", type=int, default=20)
    parser.add_argument(
        "--clips",
        choices=("librivox", "corpus", "continuous", "reading"),
        default="librivox",
        help="librivox: the 5 LibriVox clips (24.7 s); corpus: every clip with a reference "
        "(LibriVox, cards, 24 espeak-ng sentences; 151 s, 435 words) for a firmer WER; "
        "continuous: long turns of continuous real speech (the LibriVox clips read as one "
        "26 s passage and the pyannote sample call, 30 s; needs `make test-fixtures`), WER "
        "against offline decoding of the same clips; reading: only that 26 s passage (one "
        "reader, as in a dictation or a speech)",
    )
    parser.add_argument(
        "--files",
        nargs="+",
        metavar="FILE",
        help="stream these audio files (any container) instead of --clips; no WER figures",
    )
    add_server_args(parser, set_example="min_window_s=30")
    args = parser.parse_args()
    if args.files:
        library = [_file_clip(path) for path in args.files]
    else:
        with tempfile.TemporaryDirectory() as tmp:
            if args.clips in ("continuous", "reading"):
                library = _continuous_clips()[: 1 if args.clips == "reading" else 2]
            else:
                library = librivox_clips() if args.clips == "librivox" else wer_corpus(Path(tmp))
    clips = [LoadClip(c.audio, c.text) for c in library]
    with bench_server(args) as server:
        url, key, pid = server.ws, server.key, server.pid
        source = f"file(s) {', '.join(args.files)}" if args.files else f"clips ({args.clips})"
        print(
            f"{len(clips)} {source} per session, {args.frame_ms} ms frames, "
            "real-time pace, finalize after each clip"
        )
        if args.clips in ("continuous", "reading") and not args.files:
            # No human reference for the meetings: the offline decode is the reference.
            texts = offline_texts([c.audio for c in library], vad_filter=True)
            library = [Clip(c.name, c.audio, text) for c, text in zip(library, texts, strict=True)]
            print(
                "WER of finals below is against offline faster-whisper (vad_filter=True) "
                "on the same clips"
            )
        elif not args.files:
            offline = _offline_wer(library)
            print(
                f"offline WER of the same model on the same clips (faster-whisper, beam 5): "
                f"{offline:.3f}"
            )
        print(TABLE_HEADER + " WER of finals | server CPU (cores) | peak RSS (MB) |")
        print("|---" * 10 + "|")
        for count in args.sessions:
            sampler = _Sampler(pid) if pid else None
            cpu0 = _proc_stats(pid)[0] if pid else 0.0
            if sampler:
                sampler.start()
            started = time.monotonic()
            summary = asyncio.run(run_load(url, key, clips, count, frame_ms=args.frame_ms))
            wall = time.monotonic() - started
            cpu = (_proc_stats(pid)[0] - cpu0) / wall if pid else float("nan")
            if sampler:
                sampler.stop.set()
                sampler.join()
            wers = (
                [_session_wer(library, texts) for texts in summary.final_texts]
                if not args.files
                else [float("nan")]
            )
            rss = sampler.peak_rss / 2**20 if sampler else float("nan")
            print(
                table_row(summary) + f" {statistics.median(wers):.3f} | {cpu:.2f} | {rss:.0f} |",
                flush=True,
            )


def _file_clip(path: str) -> Clip:
    """A recording of any container as a 16 kHz mono clip without a reference text."""
    from pulse_stt.audio.container import iter_file_audio

    with open(path, "rb") as file:
        return Clip(Path(path).name, np.concatenate(list(iter_file_audio(file))), "")


def _continuous_clips() -> list[Clip]:
    """Long turns of continuous real speech: what a caller reading or a meeting sends."""
    from tests.support.speakers import natural_recordings

    readings = librivox_clips()
    gap = np.zeros(int(0.25 * 16000), np.float32)  # a breath, far below any turn end
    passage = np.concatenate([part for c in readings for part in (c.audio, gap)])
    reading = Clip("librivox passage", passage, " ".join(c.text for c in readings))
    # The AMI meetings are left out: far-field crosstalk, where partials and finals disagree
    # so often that word lag measures the disagreement rather than the engine's speed.
    call = next(r for r in natural_recordings() if r.name == "sample")
    return [reading, Clip("pyannote sample call", call.audio, "")]


def _offline_wer(library: list) -> float:
    """WER of plain faster-whisper on the clips against their references."""
    offline = offline_texts([c.audio for c in library])
    return wer(" ".join(c.text for c in library), " ".join(offline))


def _session_wer(library: list, texts: list[str]) -> float:
    """WER of one session's finals against the clips in the order that session sent them
    (session i starts at clip i mod 5; its first final tells which)."""
    first = texts[0] if texts else ""
    start = min(range(len(library)), key=lambda i: wer(library[i].text, first))
    ordered = library[start:] + library[:start]
    return wer(" ".join(c.text for c in ordered), " ".join(texts))


if __name__ == "__main__":
    main()
