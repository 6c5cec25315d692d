"""Whole-file REST on long files: time and server memory as the file grows. Prints figures.

Builds FLAC files of N minutes from the LibriVox clips (or, with `--clips corpus`, every
clip with a reference) with 0.8 s pauses, starts the real server, posts each file to
`POST /waves/v1/stt/?model=...` (median of `--repeats` runs) and samples the server's RSS
from /proc while it works. Memory should grow far less than the file's float32 size
(N min x 3.84 MB), since a file is decoded, cut and transcribed a turn at a time.
`--offline` times plain faster-whisper (beam 5 and greedy, two threads) on the same audio
in this process: the baseline for both speed and WER.

    .venv/bin/python bench/rest_long_file.py --minutes 1 5
    .venv/bin/python bench/rest_long_file.py --minutes 5.8 --model pulse pulse-pro \
        --clips corpus --offline

`--multichannel`: instead, the cost of `multichannel=true`: a stereo WAV of N minutes (the
clips in order on channel 0, in reverse order on channel 1) against the same two channels
posted as two mono requests, one after the other; median of `--repeats` runs each, in one
server process.

    .venv/bin/python bench/rest_long_file.py --multichannel --minutes 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.audio import (
    encode_file,
    join,
    librivox_clips,
    silence,
    wav_frames,
    wer,
    wer_corpus,
)
from tests.support.server import Server, running_server


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def server_pid(port: int) -> int:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                environ = (proc / "environ").read_bytes()
            except OSError:
                continue
            if "pulse_stt serve" in cmd and f"PULSE_STT_PORT={port}".encode() in environ:
                return int(proc.name)
    raise RuntimeError("server process not found")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 5.0])
    parser.add_argument("--multichannel", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", nargs="+", default=["pulse"], help="pulse, pulse-pro")
    parser.add_argument(
        "--clips",
        choices=("librivox", "corpus"),
        default="librivox",
        help="librivox: the 5 LibriVox clips repeated; corpus: every clip with a reference "
        "(LibriVox, cards, 24 espeak-ng sentences; 151 s) joined, repeated to length",
    )
    parser.add_argument(
        "--offline", action="store_true", help="also time plain faster-whisper on the same audio"
    )
    args = parser.parse_args()
    if args.multichannel:
        multichannel(args.minutes, args.repeats)
        return
    with tempfile.TemporaryDirectory() as tmp:
        clips = librivox_clips() if args.clips == "librivox" else wer_corpus(Path(tmp))
    one_round = join(*[part for c in clips for part in (c.audio, silence(0.8))])
    reference_round = " ".join(c.text for c in clips)
    with running_server(Path(tempfile.mkdtemp()), log_level="warning") as server:
        pid = server_pid(server.port)
        print(f"server idle RSS: {rss_mb(pid):.0f} MB; median of {args.repeats} runs")
        print(
            f"{'model':>9} {'minutes':>8} {'file MB':>8} {'float32 MB':>11} {'seconds':>8}"
            f" {'x real time':>12} {'peak RSS MB':>12} {'WER':>6}"
        )
        for minutes in args.minutes:
            rounds = max(1, round(minutes * 60 / (one_round.size / 16000)))
            audio = join(*[one_round] * rounds)
            reference = " ".join([reference_round] * rounds)
            seconds = audio.size / 16000
            body = encode_file(audio, "flac", "flac")
            for model in args.model:
                runs = [_timed_file(server, pid, body, model) for _ in range(args.repeats)]
                elapsed = statistics.median(r[0] for r in runs)
                peak = max(r[1] for r in runs)
                print(
                    f"{model:>9} {seconds / 60:>8.1f} {len(body) / 1e6:>8.1f}"
                    f" {audio.size * 4 / 1e6:>11.1f} {elapsed:>8.1f} {seconds / elapsed:>12.1f}"
                    f" {peak:>12.0f} {wer(reference, runs[0][2]):>6.3f}",
                    flush=True,
                )
            if args.offline:
                for beam in (5, 1):
                    runs = [_offline(audio, beam) for _ in range(args.repeats)]
                    elapsed = statistics.median(r[0] for r in runs)
                    print(
                        f"{'offline b' + str(beam):>9} {seconds / 60:>8.1f} {'':>8} {'':>11}"
                        f" {elapsed:>8.1f} {seconds / elapsed:>12.1f} {'':>12}"
                        f" {wer(reference, runs[0][1]):>6.3f}",
                        flush=True,
                    )


def _timed_file(server: Server, pid: int, body: bytes, model: str) -> tuple[float, float, str]:
    """(seconds, peak server RSS MB, transcript) of one REST request."""
    peak = [rss_mb(pid)]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_mb(pid))
            time.sleep(0.2)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t0 = time.monotonic()
    response = httpx.post(
        f"{server.http}/waves/v1/stt/?model={model}&language=en",
        content=body,
        headers=server.headers(),
        timeout=3600,
    )
    elapsed = time.monotonic() - t0
    done.set()
    sampler.join()
    return elapsed, peak[0], str(response.json()["transcription"])


_MODELS: dict[str, object] = {}


def _offline(audio: np.ndarray, beam: int) -> tuple[float, str]:
    """Plain faster-whisper on the server's model in this process (its own VAD-less 30 s
    windows, two threads, as the server's two workers have), timed."""
    from faster_whisper import WhisperModel

    from pulse_stt.config import Settings
    from pulse_stt.engine.model_store import resolve_model_dir

    if "model" not in _MODELS:
        settings = Settings()
        _MODELS["model"] = WhisperModel(
            str(resolve_model_dir(settings.model, settings.cache_dir)),
            device="cpu",
            compute_type="int8",
            cpu_threads=2,
        )
    model = _MODELS["model"]
    assert isinstance(model, WhisperModel)
    t0 = time.monotonic()
    segments, _ = model.transcribe(audio, language="en", beam_size=beam)
    text = " ".join(s.text.strip() for s in segments)
    return time.monotonic() - t0, text


def _wav(channels: list[np.ndarray]) -> bytes:
    return wav_frames((np.clip(np.stack(channels, axis=1), -1, 1) * 32767).astype("<i2"))


def _timed_post(server: Server, body: bytes, query: str) -> tuple[float, dict[str, object]]:
    t0 = time.monotonic()
    response = httpx.post(
        f"{server.http}/waves/v1/stt/?model=pulse&language=en{query}",
        content=body,
        headers=server.headers(),
        timeout=3600,
    )
    response.raise_for_status()
    return time.monotonic() - t0, response.json()


def multichannel(minutes_list: list[float], repeats: int) -> None:
    clips = librivox_clips()
    forward = join(*[part for c in clips for part in (c.audio, silence(0.8))])
    backward = join(*[part for c in reversed(clips) for part in (silence(0.8), c.audio)])
    size = max(forward.size, backward.size)
    forward, backward = (np.pad(a, (0, size - a.size)) for a in (forward, backward))
    with running_server(Path(tempfile.mkdtemp()), log_level="warning") as server:
        _timed_post(server, _wav([forward]), "")  # warm up
        print(f"{'minutes':>8} {'stereo s':>9} {'2 x mono s':>11} {'ratio':>6} {'WER ch0/ch1':>12}")
        for minutes in minutes_list:
            rounds = max(1, round(minutes * 60 / (size / 16000)))
            left, right = join(*[forward] * rounds), join(*[backward] * rounds)
            stereo, monos = _wav([left, right]), [_wav([left]), _wav([right])]
            stereo_s, mono_s = [], []
            data: dict[str, object] = {}
            for _ in range(repeats):
                elapsed, data = _timed_post(server, stereo, "&multichannel=true")
                stereo_s.append(elapsed)
                mono_s.append(sum(_timed_post(server, body, "")[0] for body in monos))
            texts = data["channels"]
            assert isinstance(texts, list)
            refs = [
                " ".join([" ".join(c.text for c in clips)] * rounds),
                " ".join([" ".join(c.text for c in reversed(clips))] * rounds),
            ]
            errors = "/".join(
                f"{wer(ref, str(t['transcription'])):.3f}"
                for ref, t in zip(refs, texts, strict=True)
            )
            stereo_med, mono_med = statistics.median(stereo_s), statistics.median(mono_s)
            print(
                f"{left.size / 16000 / 60:>8.2f} {stereo_med:>9.2f} {mono_med:>11.2f}"
                f" {stereo_med / mono_med:>6.2f} {errors:>12}"
            )


if __name__ == "__main__":
    main()
