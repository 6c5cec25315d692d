"""The real server as a user starts it (`pulse-stt serve`, real model, real database), for
the end-to-end tests (tests/e2e/conftest.py makes fixtures of it) and the benchmarks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

API_KEY = "pstt_e2e_test_key_0123456789abcdef"


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    key: str
    env: dict[str, str]
    log: Path
    pid: int | None = None

    @property
    def ws(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def http(self) -> str:
        return f"http://{self.host}:{self.port}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def keys_list(server: Server) -> tuple[str, float]:
    """`pulse-stt keys list` against the server's database: the output and the audio
    seconds recorded for the server's PULSE_STT_API_KEY."""
    out = subprocess.run(
        [sys.executable, "-m", "pulse_stt", "keys", "list"],
        env=server.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    row = next(line for line in out.splitlines() if "PULSE_STT_API_KEY" in line)
    return out, float(row.split()[-3])


@contextmanager
def running_server(data_dir: Path, **settings: str) -> Iterator[Server]:
    """Start `pulse-stt serve` as a user would, with PULSE_STT_* settings; stop it after."""
    port = free_port()
    env = {
        **os.environ,
        "PULSE_STT_DATA_DIR": str(data_dir),
        "PULSE_STT_API_KEY": API_KEY,
        "PULSE_STT_PORT": str(port),
        "PULSE_STT_HOST": "127.0.0.1",
        "PULSE_STT_LOG_LEVEL": "warning",
        **{f"PULSE_STT_{k.upper()}": v for k, v in settings.items()},
    }
    log = data_dir / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "pulse_stt", "serve"], env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                pytest.fail(f"server exited early:\n{log.read_text()}")
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"server not ready in time:\n{log.read_text()}")
            time.sleep(0.3)
        yield Server("127.0.0.1", port, env["PULSE_STT_API_KEY"], env, log, proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
