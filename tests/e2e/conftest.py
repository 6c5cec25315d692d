"""Fixtures: the real server (real model, real database) once per test session
(tests/support/server.py starts it), the LibriVox clips, a PostgreSQL database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.audio import LIBRIVOX, Clip, librivox_clips
from tests.support.postgres import PostgresMissingError, local_postgres
from tests.support.server import Server, running_server


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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    try:
        with local_postgres() as postgres:
            yield postgres.url
    except PostgresMissingError as exc:
        pytest.fail(str(exc))
