"""A throwaway PostgreSQL (Debian's server, on loopback) for the tests: `local_postgres()`
initialises a cluster in a temporary folder, starts it, creates the database `pstt`, and
removes it all afterwards; the returned handle can stop and start it (outage tests)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import free_port

PG_BIN = next(iter(sorted(Path("/usr/lib/postgresql").glob("*/bin"))), None)


class PostgresMissingError(RuntimeError):
    pass


def as_postgres(*command: str) -> list[str]:
    # initdb refuses to run as root; CI and the Makefile's test-deps run as root.
    return ["runuser", "-u", "postgres", "--", *command]


@dataclass(frozen=True)
class Postgres:
    url: str  # SQLAlchemy URL of the database `pstt`
    port: int
    _ctl: tuple[str, ...]
    _options: str

    def start(self) -> None:
        subprocess.run(
            as_postgres(*self._ctl, "-o", self._options, "start"), check=True, capture_output=True
        )

    def stop(self) -> None:
        subprocess.run(as_postgres(*self._ctl, "stop", "-m", "fast"), capture_output=True)


@contextmanager
def local_postgres(prefix: str = "pulse-stt-pg-") -> Iterator[Postgres]:
    if PG_BIN is None or shutil.which("runuser") is None:
        raise PostgresMissingError(
            "PostgreSQL is not installed (make test-deps installs Debian's postgresql)"
        )
    # Not under pytest's tmp dir: the postgres user cannot enter root's private folders.
    root = Path(tempfile.mkdtemp(prefix=prefix))
    shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    subprocess.run(
        as_postgres(str(PG_BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"),
        check=True,
        capture_output=True,
    )
    ctl = (str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w")
    postgres = Postgres(
        f"postgresql+psycopg://postgres@127.0.0.1:{port}/pstt",
        port,
        ctl,
        f"-p {port} -k {root} -h 127.0.0.1",
    )
    postgres.start()
    try:
        subprocess.run(
            as_postgres(str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port), "pstt"),
            check=True,
            capture_output=True,
        )
        yield postgres
    finally:
        postgres.stop()
        shutil.rmtree(root, ignore_errors=True)
