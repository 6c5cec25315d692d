"""Scale-out recipe: nginx (Debian) in front of two pulse-stt processes sharing PostgreSQL.

Runs `deploy/nginx.conf` as committed, with only its ports changed to free ones: sessions
spread over both servers; one server is killed mid-run; the other's sessions carry on to
their finals, and new sessions land on it.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.support.audio import Clip, join, pcm16, silence
from tests.support.client import Pace, Received, chunks, run_script
from tests.support.prometheus import scrape_samples, total
from tests.support.server import Server, free_port, keys_list, running_server

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
QUERY = "model=pulse&language=en&word_timestamps=true"


def _sessions_served(server: Server) -> float:
    return total(scrape_samples(server.http), "pulse_stt_sessions_total")


@pytest.fixture(scope="module")
def cluster(postgres_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        pytest.fail("nginx is not installed (make test-deps installs Debian's nginx)")
    with ExitStack() as stack:
        servers = [
            stack.enter_context(
                running_server(tmp_path_factory.mktemp(f"node{i}"), database_url=postgres_url)
            )
            for i in range(2)
        ]
        run = tmp_path_factory.mktemp("nginx")
        port = free_port()
        conf = (REPO / "deploy" / "nginx.conf").read_text()
        conf = conf.replace("127.0.0.1:8000", f"127.0.0.1:{port}")
        conf = conf.replace("127.0.0.1:8001", f"127.0.0.1:{servers[0].port}")
        conf = conf.replace("127.0.0.1:8002", f"127.0.0.1:{servers[1].port}")
        (run / "nginx.conf").write_text(conf)
        log = open(run / "nginx.log", "wb")  # noqa: SIM115 (closed by the stack)
        stack.callback(log.close)
        proc = subprocess.Popen(
            [nginx, "-e", "stderr", "-p", str(run), "-c", str(run / "nginx.conf")],
            stdout=log,
            stderr=log,
        )
        stack.callback(proc.wait, 10)
        stack.callback(proc.terminate)
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"nginx did not start:\n{(run / 'nginx.log').read_text()}")
                time.sleep(0.1)
        front = Server("127.0.0.1", port, servers[0].key, servers[0].env, run / "nginx.log")
        yield {"front": front, "servers": servers}


async def _callers(front: Server, pcm: bytes, count: int, *, kill: int | None = None) -> list:
    """`count` callers streaming `pcm` at 2x real time; optionally SIGKILL pid `kill` after 2 s."""

    async def caller(index: int) -> Received | BaseException:
        await asyncio.sleep(0.2 * index)
        try:
            return await run_script(
                front,
                QUERY,
                [*chunks(pcm), {"type": "close_stream"}],
                pace=Pace(32000, 2.0),
                timeout=120,
            )
        except Exception as exc:  # a refused or dropped connection, reported below
            return exc

    async def killer() -> None:
        if kill is not None:
            await asyncio.sleep(2.0)
            os.kill(kill, signal.SIGKILL)

    results = await asyncio.gather(*(caller(i) for i in range(count)), killer())
    return list(results[:count])


def test_sessions_spread_survive_a_dead_server_and_land_on_the_live_one(
    cluster: dict, clips: list[Clip]
) -> None:
    front: Server = cluster["front"]
    first, second = cluster["servers"]
    clip = clips[3]  # "had he married a more amiable woman ..."
    pcm = pcm16(join(clip.audio, silence(1.0), clip.audio))

    # Spread: four sessions through the balancer reach both processes.
    for got in asyncio.run(_callers(front, pcm, 4)):
        assert isinstance(got, Received) and got.close_code == 1000
        assert "amiable" in got.final_text.lower()
    assert _sessions_served(first) >= 1 and _sessions_served(second) >= 1

    # Kill the first server mid-run: its callers lose the connection; the second's
    # callers get every final and is_last.
    served_before = _sessions_served(second)
    results = asyncio.run(_callers(front, pcm, 4, kill=first.pid))
    completed = [r for r in results if isinstance(r, Received) and r.close_code == 1000]
    assert 0 < len(completed) < 4, [getattr(r, "close_code", r) for r in results]
    for got in completed:
        assert got.finals[-1]["is_last"] and got.final_text.lower().count("amiable") == 2

    # New sessions all land on the survivor and are served in full.
    for got in asyncio.run(_callers(front, pcm, 3)):
        assert isinstance(got, Received) and got.close_code == 1000, got
        assert got.final_text.lower().count("amiable") == 2
    assert _sessions_served(second) >= served_before + len(completed) + 3
    # Usage of every finished session is in the shared database.
    _, seconds = keys_list(second)
    assert seconds >= (4 + len(completed) + 3) * len(pcm) / 32000 * 0.99
