"""`pip install pulse-stt` is the client: importing it pulls none of the server's stack, the
server commands say what to install when the `server` extra is missing, and decoding files
names the `audio` extra."""

from __future__ import annotations

import ast
import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

from pulse_stt import cli
from pulse_stt.client import file_frames
from pulse_stt.client.sources import AUDIO_EXTRA_HINT

HEAVY = ("ctranslate2", "faster_whisper", "soxr", "av", "starlette", "onnxruntime", "uvicorn")
SRC = str(Path(cli.__file__).resolve().parents[1])


def _imported_after(statement: str) -> list[str]:
    code = (
        f"import sys; {statement}; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {set(HEAVY)!r}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": SRC},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return ast.literal_eval(out)  # a printed list of module names


def test_importing_the_client_imports_no_server_module() -> None:
    assert _imported_after("import pulse_stt.client") == []


def test_the_cli_module_imports_no_server_module_up_front() -> None:
    assert _imported_after("import pulse_stt.cli") == []


@pytest.mark.parametrize(
    "argv",
    [["serve"], ["serve", "--port", "9000"], ["keys", "list"], ["model"], ["settings"]],
)
def test_without_the_server_extra_server_commands_name_it(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "missing_server_modules", lambda: ["uvicorn", "faster_whisper"])
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert "pip install 'pulse-stt[server]'" in err
    assert "Traceback" not in err


def test_without_the_server_extra_client_commands_still_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(cli, "missing_server_modules", lambda: ["uvicorn"])
    assert cli.main(["transcribe", str(tmp_path / "missing.wav"), "--key", "k"]) == 2
    assert "no such file" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["transcribe", "a.wav", "--no-such-flag"])
    assert exit_info.value.code == 2


def test_decoding_a_file_without_the_audio_extra_names_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pulse_stt.audio.container", None)  # import fails
    path = tmp_path / "a.wav"
    path.write_bytes(b"RIFF")

    async def drain() -> None:
        async for _ in file_frames(path):
            pass

    with pytest.raises(ImportError, match=r"pulse-stt\[audio\]"):
        asyncio.run(drain())


def test_stream_command_without_the_audio_extra_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "pulse_stt.audio.container", None)
    path = tmp_path / "a.wav"
    path.write_bytes(b"RIFF")
    assert cli.main(["stream", str(path), "--key", "k"]) == 2
    assert AUDIO_EXTRA_HINT in capsys.readouterr().err
