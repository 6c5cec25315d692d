"""Where the engine's time goes: passes, encoder vs decoder, padding, queue waits, turn cost.

Runs the real engine (engine/transcriber.py, engine/scheduler.py) in this process, no
socket. Live scenarios feed `--callers` simulated callers through StreamSession at real-time
pace (100 ms chunks), each starting at another point of its speech, and submit what a live
session submits (partials, speculative finals, finals; a final that reuses its speculation
is not decoded again). Speech is `short` (card names and LibriVox clips, 1 s pauses: one
turn per clip) or `long` (LibriVox clips with 0.3 s pauses: turns up to the 25 s cut).
The file scenario is a whole file through stream/file.py as REST runs it (the LibriVox
clips joined with 0.8 s pauses, as bench/rest_long_file.py builds it).

Per scenario it prints, by job kind: passes and jobs per second of audio, encoder, decoder,
alignment and full-window (fallback) seconds per audio second, audio vs encoder-window
seconds, and the median / p95 queue wait; then, for final-quality jobs, the cost of one job
(its batch's wall time shared among the batch) by turn length.

`--file-compare` times the whole file with the file path's levers off (one turn per job,
no packing, 4 in flight: the old path) and on, interleaved in this process, and prints the
median real-time factor and WER of each.

    .venv/bin/python bench/engine_profile.py --quick
    .venv/bin/python bench/engine_profile.py --callers 1 8 12 --seconds 60
    .venv/bin/python bench/engine_profile.py --file-compare --rounds 12 --runs 3
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import threading
import time
from collections import defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.audio import card_clips, join, librivox_clips, silence, wer

import pulse_stt.stream.file as file_path
from pulse_stt.config import Settings
from pulse_stt.engine.engine import Engine
from pulse_stt.engine.scheduler import DecodeScheduler
from pulse_stt.engine.transcriber import StageTimes
from pulse_stt.engine.types import DecodeJob, Hypothesis
from pulse_stt.protocol import MODEL_RATE, FileParams, JobKind, LanguageChoice, TextOptions
from pulse_stt.stream.session import SessionConfig, StreamSession, UtteranceAudio

CHUNK = MODEL_RATE // 10
LENGTH_BUCKETS = (5, 10, 15, 20, 30)


@dataclass
class Trace:
    """What the wrapped scheduler saw: queue waits and per-job cost, by kind."""

    submitted: dict[int, float] = field(default_factory=dict)
    waits: dict[JobKind, list[float]] = field(default_factory=lambda: defaultdict(list))
    # (kind, audio seconds, window seconds, seconds of its batch's pass / batch size)
    jobs: list[tuple[JobKind, float, float, float]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def instrument(engine: Engine, trace: Trace) -> None:
    """Swap the engine's scheduler for one whose decode function records what it runs."""
    transcriber = engine.transcriber

    def decode_batch(jobs: list[DecodeJob]) -> list[Hypothesis | BaseException]:
        started = time.perf_counter()
        with trace.lock:
            for job in jobs:
                trace.waits[job.kind].append(started - trace.submitted.pop(id(job), started))
        results = transcriber.decode_batch(jobs)
        share = (time.perf_counter() - started) / len(jobs)
        with trace.lock:
            for job in jobs:
                audio = min(job.audio.size, 30 * MODEL_RATE)
                window = transcriber.windows.window_samples(audio, final=job.is_final)
                trace.jobs.append((job.kind, audio / MODEL_RATE, window / MODEL_RATE, share))
        return results

    old = engine.scheduler
    engine.scheduler = DecodeScheduler(
        transcriber.decode,
        decode_batch=decode_batch,
        batch_key=transcriber.batch_key,
        max_batch=old._max_batch,
        workers=len(old._threads),
    )
    old.close()
    submit = engine.scheduler.submit

    def traced_submit(job: DecodeJob) -> Future[Hypothesis | None]:
        with trace.lock:
            trace.submitted[id(job)] = time.perf_counter()
        return submit(job)

    engine.scheduler.submit = traced_submit  # type: ignore[method-assign]


def speech(kind: str) -> np.ndarray:
    lib = librivox_clips()
    if kind == "short":
        clips = [c for pair in zip(card_clips(), lib, strict=False) for c in pair]
        return join(*[p for c in clips for p in (c.audio, silence(1.0))])
    return join(*[p for c in lib for p in (c.audio, silence(0.3))], silence(1.0))


def live(engine: Engine, callers: int, audio: np.ndarray, seconds: float) -> float:
    """Callers at real-time pace; returns the audio seconds fed."""
    config = SessionConfig(encoding="linear16", sample_rate=MODEL_RATE, eou_timeout_ms=600)
    sessions = [StreamSession(config) for _ in range(callers)]
    starts = [i * audio.size // max(1, callers) for i in range(callers)]
    pending: list[Future[Hypothesis | None]] = []
    chunks = int(seconds * 10)
    t0 = time.perf_counter()
    for n in range(chunks):
        for i, session in enumerate(sessions):
            at = (starts[i] + n * CHUNK) % (audio.size - CHUNK)
            for work in session.feed_model_rate(audio[at : at + CHUNK]):
                if not isinstance(work, UtteranceAudio) or work.reuses_speculation:
                    continue
                job = DecodeJob(f"caller-{i}", work.audio, work.kind, "en")
                pending.append(engine.submit(job))
        time.sleep(max(0.0, t0 + (n + 1) / 10 - time.perf_counter()))
    for i, session in enumerate(sessions):
        for work in session.close():
            if isinstance(work, UtteranceAudio) and work.is_final:
                pending.append(engine.submit(DecodeJob(f"caller-{i}", work.audio, work.kind, "en")))
    for future in pending:
        if not future.cancelled():
            future.result()
    return callers * chunks / 10


def file_audio(rounds: int) -> tuple[np.ndarray, str]:
    clips = librivox_clips()
    one = join(*[part for c in clips for part in (c.audio, silence(0.8))])
    return join(*[one] * rounds), " ".join(" ".join(c.text for c in clips) for _ in range(rounds))


def run_file(engine: Engine, audio: np.ndarray) -> tuple[float, str, float]:
    """Wall seconds, transcript, and this process's CPU seconds (a steadier figure than
    wall time on a shared machine)."""
    params = FileParams(
        pro=False,
        language=LanguageChoice("en", "en", ("en",)),
        text=TextOptions(word_timestamps=False),
    )
    chunks = [audio[i : i + 10 * MODEL_RATE] for i in range(0, audio.size, 10 * MODEL_RATE)]
    started, cpu = time.perf_counter(), time.process_time()
    result = file_path.transcribe_audio_chunks(
        chunks, engine=engine, params=params, request_id="profile-file"
    )
    text = " ".join(t.hypothesis.text for t in result.turns)
    return time.perf_counter() - started, text, time.process_time() - cpu


def levers(on: bool) -> None:
    """The whole-file levers (stream/file.py): grouped submission and packing, or neither."""
    file_path._PACK = on
    file_path._GROUP = 8 if on else 1
    file_path._MAX_IN_FLIGHT = 16 if on else 4


def report(name: str, audio_s: float, trace: Trace, times: dict[JobKind, StageTimes]) -> None:
    print(f"\n== {name}: {audio_s:.0f} s of audio")
    print(
        f"{'kind':>12} {'jobs/s':>7} {'pass/s':>7} {'enc':>6} {'dec':>6} {'align':>6}"
        f" {'fullwin':>7} {'audio s':>8} {'window s':>9} {'wait p50':>9} {'wait p95':>9}"
    )
    for kind, t in sorted(times.items()):
        if not t.jobs:
            continue
        waits = sorted(trace.waits.get(kind, [])) or [0.0]
        per = 1 / audio_s
        print(
            f"{kind.value:>12} {t.jobs * per:>7.2f} {t.batches * per:>7.2f}"
            f" {t.encode * per:>6.3f} {t.decode * per:>6.3f} {t.align * per:>6.3f}"
            f" {t.full_window * per:>7.3f} {t.audio_s:>8.0f} {t.window_s:>9.0f}"
            f" {statistics.median(waits):>9.3f} {waits[math.ceil(0.95 * len(waits)) - 1]:>9.3f}"
        )
    print("  (enc/dec/align/fullwin: seconds of worker time per second of audio)")
    finals = [j for j in trace.jobs if j[0] is not JobKind.PARTIAL]
    if finals:
        print(f"{'turn s':>12} {'jobs':>5} {'window s':>9} {'ms/job':>7}  (final-quality jobs)")
        low = 0
        for high in LENGTH_BUCKETS:
            rows = [j for j in finals if low <= j[1] < high]
            if rows:
                print(
                    f"{f'{low}-{high}':>12} {len(rows):>5}"
                    f" {statistics.mean(r[2] for r in rows):>9.1f}"
                    f" {1000 * statistics.median(r[3] for r in rows):>7.0f}"
                )
            low = high


def delta(before: dict[JobKind, StageTimes], after: dict[JobKind, StageTimes]) -> dict:
    return {k: v.minus(before.get(k, StageTimes())) for k, v in after.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 s live, a 1.4 min file")
    parser.add_argument("--callers", type=int, nargs="+", default=[1, 8, 12])
    parser.add_argument("--speech", nargs="+", default=["short", "long"])
    parser.add_argument("--seconds", type=float, default=60.0, help="live audio per caller")
    parser.add_argument("--rounds", type=int, default=12, help="LibriVox rounds in the file")
    parser.add_argument("--file-compare", action="store_true")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 20.0, 3
    engine = Engine(Settings())
    trace = Trace()
    instrument(engine, trace)
    transcriber = engine.transcriber
    try:
        audio, reference = file_audio(args.rounds)
        if args.file_compare:
            compare(engine, audio, reference, args.runs)
            return
        for kind in args.speech:
            voice = speech(kind)
            for callers in args.callers:
                trace.waits.clear()
                trace.jobs.clear()
                before = transcriber.stage_times()
                fed = live(engine, callers, voice, args.seconds)
                name = f"live, {callers} caller(s), {kind} turns"
                report(name, fed, trace, delta(before, transcriber.stage_times()))
        trace.waits.clear()
        trace.jobs.clear()
        before = transcriber.stage_times()
        seconds, text, _ = run_file(engine, audio)
        duration = audio.size / MODEL_RATE
        report(
            f"whole file, {duration / 60:.1f} min: {duration / seconds:.1f}x real time, "
            f"WER {wer(reference, text):.4f}",
            duration,
            trace,
            delta(before, transcriber.stage_times()),
        )
    finally:
        engine.close()


def compare(engine: Engine, audio: np.ndarray, reference: str, runs: int) -> None:
    duration = audio.size / MODEL_RATE
    results: dict[str, list[tuple[float, float, float]]] = {"levers off": [], "levers on": []}
    for _ in range(runs):
        for name in results:
            levers(name == "levers on")
            seconds, text, cpu = run_file(engine, audio)
            results[name].append((duration / seconds, wer(reference, text), cpu / duration))
            print(
                f"{name:>10}: {duration / seconds:6.1f}x real time,"
                f" {cpu / duration:.3f} CPU s per audio s, WER {results[name][-1][1]:.4f}"
            )
    levers(True)
    speed = {k: statistics.median(r[0] for r in v) for k, v in results.items()}
    cpu = {k: statistics.median(r[2] for r in v) for k, v in results.items()}
    for name, rows in results.items():
        print(
            f"median {name:>10}: {speed[name]:6.1f}x real time, {cpu[name]:.3f} CPU s per"
            f" audio s, WER {statistics.median(r[1] for r in rows):.4f}"
        )
    print(
        f"on/off: {speed['levers on'] / speed['levers off']:.2f}x the speed,"
        f" {cpu['levers on'] / cpu['levers off']:.2f}x the CPU"
    )


if __name__ == "__main__":
    main()
