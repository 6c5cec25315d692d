"""Whole-file REST on long files: time and server memory as the file grows. Prints figures.

Builds FLAC files of N minutes from the LibriVox clips (with 0.8 s pauses), starts the real
server, posts each file to `POST /waves/v1/stt/?model=pulse` and samples the server's RSS
from /proc while it works. Memory should grow far less than the file's float32 size
(N min x 3.84 MB), since a file is decoded, cut and transcribed a turn at a time.

    .venv/bin/python bench/rest_long_file.py --minutes 1 5
    .venv/bin/python bench/rest_long_file.py --minutes 5.8 --model pulse pulse-pro
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.audio import encode_file, join, librivox_clips, silence, wer
from tests.support.server import running_server


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
    parser.add_argument("--model", nargs="+", default=["pulse"], help="pulse, pulse-pro")
    args = parser.parse_args()
    clips = librivox_clips()
    one_round = join(*[part for c in clips for part in (c.audio, silence(0.8))])
    reference_round = " ".join(c.text for c in clips)
    with running_server(Path(tempfile.mkdtemp()), log_level="warning") as server:
        pid = server_pid(server.port)
        print(f"server idle RSS: {rss_mb(pid):.0f} MB")
        print(
            f"{'model':>9} {'minutes':>8} {'file MB':>8} {'float32 MB':>11} {'seconds':>8}"
            f" {'RTF':>6} {'peak RSS MB':>12} {'WER':>6}"
        )
        for model, minutes in ((m, n) for n in args.minutes for m in args.model):
            rounds = max(1, round(minutes * 60 / (one_round.size / 16000)))
            audio = join(*[one_round] * rounds)
            body = encode_file(audio, "flac", "flac")
            peak = [rss_mb(pid)]
            done = threading.Event()

            def sample(peak: list[float] = peak, done: threading.Event = done) -> None:
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
            text = response.json()["transcription"]
            seconds = audio.size / 16000
            print(
                f"{model:>9} {seconds / 60:>8.1f} {len(body) / 1e6:>8.1f}"
                f" {audio.size * 4 / 1e6:>11.1f} {elapsed:>8.1f} {elapsed / seconds:>6.3f}"
                f" {peak[0]:>12.0f}"
                f" {wer(' '.join([reference_round] * rounds), text):>6.3f}"
            )


if __name__ == "__main__":
    main()
