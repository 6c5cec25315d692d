"""Accuracy and cost of the engine's decoding passes, against offline faster-whisper.

On every clip with a reference transcript (5 LibriVox clips, 5 card names, 24 espeak-ng
sentences; `tests/support/audio.wer_corpus`) it runs, in this one process:

- offline faster-whisper `transcribe` (beam 5, the library's defaults): the baseline;
- the engine's final pass with the full 30 s window (the old behaviour, and the fallback);
- the engine's final pass with short windows (`--min-window` values) and the loop guards;
- finals and partials decoded in batches of 1, 4 and 8 jobs (as the scheduler batches
  them across sessions), for the cost per job.

Prints WER, how many finals fell back to the 30 s window, and median milliseconds per
job over `--runs` runs. Never fails on figures.

    .venv/bin/python bench/engine_passes.py --runs 3
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.audio import corpus_wer, wer_corpus

from pulse_stt.config import Settings
from pulse_stt.engine.model_store import resolve_model_dir
from pulse_stt.engine.transcriber import WhisperTranscriber, WindowPolicy
from pulse_stt.engine.types import DecodeJob
from pulse_stt.protocol import JobKind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--min-window", type=float, nargs="+", default=[10.0, 15.0])
    parser.add_argument("--partial-window", type=float, nargs="+", default=[5.0, 10.0])
    parser.add_argument("--partials-only", action="store_true")
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    settings = Settings()
    model_dir = resolve_model_dir(settings.model, settings.cache_dir)
    with tempfile.TemporaryDirectory() as tmp:
        clips = wer_corpus(Path(tmp))
    refs = [c.text for c in clips]
    seconds = sum(c.audio.size for c in clips) / 16_000
    threads = args.threads or settings.cpu_threads or 2
    print(
        f"{len(clips)} clips, {seconds:.0f} s, {sum(len(r.split()) for r in refs)} words; "
        f"{threads} threads, int8, median of {args.runs} runs"
    )
    transcriber = WhisperTranscriber(
        model_dir, device="cpu", compute_type="int8", cpu_threads=threads
    )

    def timed(fn) -> tuple[float, list[str]]:  # type: ignore[no-untyped-def]
        times, texts = [], []
        for _ in range(args.runs):
            start = time.perf_counter()
            texts = fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times), texts

    def offline() -> list[str]:
        out = []
        for c in clips:
            segments, _ = transcriber.model.transcribe(
                c.audio, language="en", condition_on_previous_text=False
            )
            out.append(" ".join(s.text.strip() for s in segments))
        return out

    def engine(final: bool, batch: int, window: float) -> tuple[float, list[str], int]:
        transcriber.windows = WindowPolicy(final_min_s=window, partial_min_s=window)
        fallbacks_before = transcriber.fallbacks  # a running count: this run's is the rise
        jobs = [
            DecodeJob(
                "bench",
                c.audio,
                kind=JobKind.FINAL if final else JobKind.PARTIAL,
                language="en",
                word_timestamps=True,
            )
            for c in clips
        ]

        def run() -> list[str]:
            # As the scheduler does: batches of up to `batch` jobs with equal keys.
            texts: dict[int, str] = {}
            groups: dict[object, list[int]] = {}
            for i, job in enumerate(jobs):
                groups.setdefault(transcriber.batch_key(job), []).append(i)
            for members in groups.values():
                for k in range(0, len(members), batch):
                    chunk = members[k : k + batch]
                    decoded = transcriber.decode_batch([jobs[i] for i in chunk])
                    for i, hyp in zip(chunk, decoded, strict=True):
                        assert not isinstance(hyp, BaseException), hyp
                        texts[i] = hyp.text
            return [texts[i] for i in range(len(jobs))]

        elapsed, texts = timed(run)
        return elapsed, texts, (transcriber.fallbacks - fallbacks_before) // args.runs

    print("| pass | window | batch | WER | 30 s fallbacks | ms per job |")
    print("|---|---|---|---|---|---|")
    elapsed, texts = timed(offline)
    base = corpus_wer(refs, texts)
    print(
        f"| offline faster-whisper (beam 5) | 30 s | 1 | {base:.4f} | - "
        f"| {elapsed / len(clips) * 1000:.0f} |"
    )
    rows = [(True, 30.0, 1)] + [(True, w, b) for w in args.min_window for b in (1, 4, 8)]
    if args.partials_only:
        rows = []
    rows += [(False, w, b) for w in args.partial_window for b in (1, 8)]
    for final, window, batch in rows:
        elapsed, texts, fallbacks = engine(final, batch, window)
        kind = "final (beam 5)" if final else "partial (greedy)"
        print(
            f"| {kind} | {window:g} s | {batch} | {corpus_wer(refs, texts):.4f} "
            f"| {fallbacks if final else '-'} | {elapsed / len(clips) * 1000:.0f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
