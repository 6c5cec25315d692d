"""The ecosystem's Pulse clients, run unchanged against a real pulse-stt.

The scripts beside this file (`livekit_stream.py`, `pipecat_pipeline.py`, `sdk.py`) run in
the clients' own virtual environment (`make clients` builds `.venv-clients` from
requirements.txt here) and print one JSON object on stdout; `run_client` runs one of them
from the test suite's side. Nothing is downloaded at test time.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.support.audio import pcm16

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
VENV = Path(os.environ.get("PULSE_STT_CLIENTS_VENV", ROOT / ".venv-clients"))


def write_raw(audio: np.ndarray, path: Path) -> str:
    """`audio` (float32 16 kHz) as the scripts read a turn: raw PCM16 LE mono 16 kHz."""
    path.write_bytes(pcm16(audio))
    return str(path)


def run_client(script: str, *args: str, timeout: float = 180) -> dict[str, Any]:
    """Run `script` in the clients' environment; its JSON result, with its stderr under
    "_stderr" (the client's own log, for failure messages)."""
    python = VENV / "bin" / "python"
    if not (VENV / ".installed").exists():
        pytest.fail(f"the Pulse clients are not installed in {VENV} (`make clients` installs them)")
    # Their own interpreter and site-packages only: not the server's source tree.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    proc = subprocess.run(
        [str(python), str(HERE / script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.fail(f"{script} exited {proc.returncode}:\n{proc.stderr[-6000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    result["_stderr"] = proc.stderr[-6000:]
    return result
