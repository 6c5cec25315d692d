"""The soak, short: 4 callers for 45 s at 2x real time against a fresh server.

Every caller streams real LibriVox recordings and per turn finalizes, lets the end of
utterance fire, closes and reconnects, or hangs up mid-utterance (with and without a
close frame), sending malformed text frames and invalid Opus packets now and then
(`tests.support.soak`; `bench/soak.py` is the long version). Not one final may be lost
or repeated, every bad frame gets its `error` and nothing else does, and the server must
stay up, release every session and log no error.

Memory: the model and the engine's buffers are allocated in the first seconds, so RSS is
compared from the first sample after a 20 s warm-up to the last one. The bound (30 %
growth in under half a minute) catches a leak per turn or per connection, not slow drift;
the 10-minute bench shows the trend.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.audio import Clip
from tests.support.prometheus import scrape_samples, total
from tests.support.server import Server, running_server
from tests.support.soak import (
    BEHAVIOURS,
    SoakClip,
    SoakOptions,
    format_report,
    run_soak,
)

WARMUP_S = 20.0


def _active_sessions(http: str) -> float:
    return total(scrape_samples(http), "pulse_stt_active_sessions")


def test_short_soak_loses_no_final(tmp_path: Path, clips: list[Clip]) -> None:
    soak_clips = [SoakClip.with_opus(c.audio, c.text) for c in clips]
    options = SoakOptions(streams=4, duration_s=45, speed=2.0, seed=8, sample_every_s=5)
    with running_server(tmp_path) as server:
        report = asyncio.run(
            run_soak(server.ws, server.key, soak_clips, options, server_pid=server.pid)
        )
        print(format_report(report, warmup_s=WARMUP_S))
        assert httpx.get(f"{server.http}/ready", timeout=5).status_code == 200
        deadline = time.monotonic() + 15  # a dropped TCP connection is noticed at once
        while _active_sessions(server.http) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _active_sessions(server.http) == 0, "sessions were not released"
    log = server.log.read_text()
    problems = [line for line in log.splitlines() if "ERROR" in line or "Traceback" in line]
    assert not problems, "server logged errors:\n" + "\n".join(problems[:20])

    assert report.lost_finals == 0
    assert report.duplicated_finals == 0
    assert report.unheard_turns == 0
    assert not report.unexpected, report.unexpected
    # The run did what it claims: every behaviour, both encodings, both kinds of bad frame.
    behaviours = {t.behaviour for t in report.turns}
    assert behaviours == set(BEHAVIOURS), behaviours
    assert {c.encoding for c in report.served} == {"linear16", "opus"}
    bad = sum((c.bad_frames for c in report.served), start=type(report.served[0].bad_frames)())
    assert bad["text"] > 0 and bad["opus"] > 0, bad
    assert len(report.served) >= options.streams
    rss = report.rss_after_warmup(WARMUP_S)
    assert rss is not None
    first, _peak, last = rss
    assert last < first * 1.3, f"RSS grew from {first / 2**20:.0f} to {last / 2**20:.0f} MB"


def test_the_bench_script_runs_against_a_running_server(server: Server) -> None:
    """bench/soak.py (the long version) against the shared server, for a few seconds."""
    bench = Path(__file__).resolve().parents[2] / "bench" / "soak.py"
    out = subprocess.run(
        [
            sys.executable,
            str(bench),
            *("--url", server.ws, "--key", server.key),
            *("--streams", "2", "--minutes", "0.2", "--speed", "3", "--sample-every", "2"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    ).stdout
    assert out.rstrip().splitlines()[-2] == "LOST FINALS: 0", out
    assert "DUPLICATED FINALS: 0" in out and "unexpected errors: 0" in out, out
    assert "| t (s) | server RSS (MB) |" in out
