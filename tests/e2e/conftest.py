"""Starts the real server (real model, real database) once per test session."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.audio import LIBRIVOX, Clip, librivox_clips

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


def _free_port() -> int:
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
    port = _free_port()
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


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("server-data")) as running:
        yield running
    # Whatever the tests threw at it, the server must never have failed inside.
    log = running.log.read_text()
    problems = [line for line in log.splitlines() if "ERROR" in line or "Traceback" in line]
    assert not problems, "server logged errors:\n" + log[-5000:]


@pytest.fixture(scope="session")
def clips() -> list[Clip]:
    if not LIBRIVOX.is_dir():
        pytest.fail("pocketsphinx-testdata is not installed (make test-deps installs it)")
    return librivox_clips()


PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


def _as_postgres(*command: str) -> list[str]:
    # initdb refuses to run as root; CI and the Makefile's test-deps run as root.
    return ["runuser", "-u", "postgres", "--", *command]


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    if PG_BIN is None or shutil.which("runuser") is None:
        pytest.fail("PostgreSQL is not installed (make test-deps installs Debian's postgresql)")
    # Not under pytest's tmp dir: the postgres user cannot enter root's private folders.
    root = Path(tempfile.mkdtemp(prefix="pulse-stt-pg-"))
    shutil.chown(root, "postgres")
    data, port = root / "data", _free_port()
    subprocess.run(
        _as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"),
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -h 127.0.0.1"
    ctl = [str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w"]
    subprocess.run(_as_postgres(*ctl, "-o", options, "start"), check=True, capture_output=True)
    try:
        subprocess.run(
            _as_postgres(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "pstt"),
            check=True,
            capture_output=True,
        )
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/pstt"
    finally:
        subprocess.run(_as_postgres(*ctl, "stop", "-m", "fast"), capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
