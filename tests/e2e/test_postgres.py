"""Keys and usage in PostgreSQL (Debian's server, started for the test on loopback)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.audio import Clip, pcm16
from tests.e2e.client import chunks, play
from tests.e2e.conftest import _free_port, keys_list, running_server

pytestmark = pytest.mark.e2e

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


def _as_postgres(*command: str) -> list[str]:
    # initdb refuses to run as root; CI and the Makefile's test-deps run as root.
    return ["runuser", "-u", "postgres", "--", *command]


@pytest.fixture(scope="module")
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


def test_keys_and_usage_in_postgres(postgres_url: str, tmp_path: Path, clips: list[Clip]) -> None:
    clip = clips[4]
    with running_server(tmp_path, database_url=postgres_url) as server:
        got = play(
            server,
            "model=pulse&language=en",
            [*chunks(pcm16(clip.audio)), {"type": "close_stream"}],
        )
        assert got.close_code == 1000 and "amiable" in got.final_text.lower()
        listing, audio_seconds = keys_list(server)
    assert audio_seconds >= clip.audio.size / 16000
    assert server.key not in listing
