"""Fixtures: the real server (real model, real database) once per test session
(tests/support/server.py starts it), the LibriVox clips, a PostgreSQL database."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.audio import LIBRIVOX, Clip, librivox_clips
from tests.support.server import Server, free_port, running_server


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
    data, port = root / "data", free_port()
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
