"""The load generator (tests/support/loadgen.py, behind bench/concurrent_streams.py) runs
and its numbers are sane; it never judges absolute times."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
from pathlib import Path

from tests.support.audio import Clip, wer, write_wav
from tests.support.loadgen import LoadClip, run_load
from tests.support.server import Server


def test_two_concurrent_sessions_give_sane_figures(server: Server, clips: list[Clip]) -> None:
    chosen = [LoadClip(c.audio, c.text) for c in clips[:2]]
    summary = asyncio.run(run_load(server.ws, server.key, chosen, 2, frame_ms=40))
    assert summary.sessions == 2
    assert summary.lost_finals == 0 and summary.duplicated_finals == 0 and summary.errors == 0
    # A word cannot be shown long before its audio was sent (alignment may overshoot a bit).
    assert -0.5 < summary.word_lag_p50 <= summary.word_lag_p95 < 30
    assert 0 < summary.finalize_p50 <= summary.finalize_p95 < 30
    assert 0 < summary.first_transcript_p50 < 30
    assert 0 <= summary.close_to_last_p50 < 30
    for index, texts in enumerate(summary.final_texts):
        order = chosen[index % 2 :] + chosen[: index % 2]
        assert wer(" ".join(c.text or "" for c in order), " ".join(texts)) < 0.15


def test_bench_script_prints_a_row_per_session_count(
    server: Server, clips: list[Clip], tmp_path: Path
) -> None:
    """bench/concurrent_streams.py with a file of one's own against a running server (what
    `pulse-stt bench` did before the load generator left the shipped package)."""
    path = tmp_path / "clip.wav"
    write_wav(clips[1].audio, 16000, path)
    bench = Path(__file__).resolve().parents[2] / "bench" / "concurrent_streams.py"
    out = subprocess.run(
        [
            sys.executable,
            str(bench),
            "--files",
            str(path),
            "--url",
            server.ws,
            "--key",
            server.key,
            "--sessions",
            "1",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    rows = [line for line in out.splitlines() if line.startswith("| 1 ") or line.startswith("| 2 ")]
    assert len(rows) == 2, out
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        lag50 = float(cells[1].split("/")[0])
        assert not math.isnan(lag50)
        assert cells[5] == "0 / 0" and cells[6] == "0"
