"""The server a benchmark runs against: one started here (`--set NAME=VALUE` settings), or a
running one (`--url`/`--key`, and then no process to take CPU/RSS figures of)."""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.server import running_server


@dataclass(frozen=True)
class BenchServer:
    ws: str
    key: str | None
    pid: int | None  # None for a server given with --url
    log: Path | None  # None for a server given with --url


def add_server_args(parser: argparse.ArgumentParser, *, set_example: str) -> None:
    """--url, --key and --set; `set_example` shows a setting in --set's help."""
    parser.add_argument("--url", help="ws://host:port of a running server")
    parser.add_argument("--key", help="its API key")
    parser.add_argument(
        "--set",
        nargs="*",
        default=[],
        metavar="NAME=VALUE",
        help=f"server settings for the server started here (e.g. {set_example})",
    )


@contextmanager
def bench_server(args: argparse.Namespace) -> Iterator[BenchServer]:
    """The server at --url, or one started here with the --set settings until the end."""
    settings = dict(item.split("=", 1) for item in args.set)
    if args.url:
        yield BenchServer(args.url, args.key, None, None)
        return
    with tempfile.TemporaryDirectory() as tmp, running_server(Path(tmp), **settings) as srv:
        yield BenchServer(srv.ws, srv.key, srv.pid, srv.log)
