"""The README's five-minute tour, run as written against a real server.

Every fenced block between `<!-- tour` and `<!-- /tour -->` runs: bash blocks in bash from
the repository root, Python blocks as scripts. The server is started the way the tour
starts it (with the key its first block exports); the only change made to the blocks is
the port, because the suite's server listens on a free one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import Server, running_server

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
_BLOCK = re.compile(r"```(bash|python)\n(.*?)```", re.DOTALL)


def tour_blocks() -> list[tuple[str, str]]:
    text = README.read_text()
    start, end = text.index("<!-- tour"), text.index("<!-- /tour -->")
    return [(m.group(1), m.group(2)) for m in _BLOCK.finditer(text[start:end])]


def _run(language: str, code: str, server: Server, tmp_path: Path) -> str:
    code = code.replace("127.0.0.1:8000", f"127.0.0.1:{server.port}")
    env = {
        **os.environ,
        "PULSE_STT_URL": server.http,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    env.pop("PULSE_STT_API_KEY", None)  # the blocks export it themselves, or read it
    if language == "python":
        script = tmp_path / "block.py"
        script.write_text(code)
        command = [sys.executable, str(script)]
        env["PULSE_STT_API_KEY"] = server.key  # exported by an earlier block in the tour
    else:
        if "export PULSE_STT_API_KEY" not in code:
            code = f"export PULSE_STT_API_KEY={server.key}\n{code}"
        command = ["bash", "-e", "-o", "pipefail", "-c", code]
    done = subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, f"{language} block failed:\n{code}\n{done.stdout}{done.stderr}"
    return done.stdout


def test_tour_runs_as_written(tmp_path: Path) -> None:
    blocks = tour_blocks()
    serve = [code for _, code in blocks if "make serve" in code]
    assert len(serve) == 1 and len(blocks) >= 6
    key = re.search(r"export PULSE_STT_API_KEY=(\S+)", serve[0])
    assert key is not None
    (tmp_path / "data").mkdir()
    with running_server(tmp_path / "data", api_key=key.group(1)) as server:
        assert server.key == key.group(1)
        for language, code in blocks:
            if "make serve" in code:
                continue  # the server above, started as that block starts it
            output = _run(language, code, server, tmp_path)
            if "sample.wav" in code:  # every block that transcribes the sample says so
                assert output.lower().count("amiable") >= 2, output
            if "--format vtt" in code:
                assert "WEBVTT" in output and " --> " in output
            if "/metrics" in code:
                finals = [
                    float(line.rsplit(" ", 1)[1])
                    for line in output.splitlines()
                    if line.startswith("pulse_stt_finals_total")
                ]
                assert finals and sum(finals) > 0, output
