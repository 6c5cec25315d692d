"""Client commands without a server: live caption rendering, the microphone source (driven
by a fake `sounddevice` that plays a real recording — there is no sound card here), Ctrl-C
stopping, output planning and usage errors (exit code 2)."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import pytest

from pulse_stt.cli import main
from pulse_stt.client import FileResult, Transcription, Word, microphone_frames
from pulse_stt.client.cli_common import UsageError
from pulse_stt.client.cli_output import CLEAR_LINE, CaptionPrinter, render
from pulse_stt.client.cli_output import output_paths as _output_paths
from pulse_stt.client.cli_stream import until_stopped
from pulse_stt.client.sources import MIC_EXTRA_HINT
from tests.unit.conftest import read_wav_int16

FAKE_SOUNDDEVICE = Path(__file__).parents[1] / "fixtures" / "fake_sounddevice" / "sounddevice.py"


def _message(text: str, *, final: bool, words: tuple[Word, ...] = ()) -> Transcription:
    return Transcription(session_id="s", transcript=text, is_final=final, words=words)


def test_terminal_captions_rewrite_the_partial_and_keep_finals() -> None:
    out = io.StringIO()
    printer = CaptionPrinter(out, tty=True, width=lambda: 30)
    printer.on_message(_message("hello", final=False))
    printer.on_message(_message("hello there", final=False))
    printer.on_message(_message("Hello there.", final=True))
    printer.on_message(_message("a partial that is much longer than the terminal", final=False))
    printer.finish()
    assert out.getvalue() == (
        f"{CLEAR_LINE}hello"
        f"{CLEAR_LINE}hello there"
        f"{CLEAR_LINE}Hello there.\n"
        f"{CLEAR_LINE}…longer than the terminal"  # the newest whole words, never wrapped
        f"{CLEAR_LINE}"
    )


def test_piped_captions_print_finals_only_or_partials_as_lines() -> None:
    messages = [
        _message("hel", final=False),
        _message("Hello.", final=True),
        _message("", final=True),  # an empty final (finalize over silence) prints nothing
    ]
    quiet = io.StringIO()
    printer = CaptionPrinter(quiet, tty=False)
    for message in messages:
        printer.on_message(message)
    assert quiet.getvalue() == "Hello.\n"

    verbose = io.StringIO()
    printer = CaptionPrinter(verbose, tty=False, show_partials=True)
    for message in messages:
        printer.on_message(message)
    assert verbose.getvalue() == "[partial] hel\n[final] Hello.\n"


def test_captions_of_two_speakers_are_labelled() -> None:
    words = (Word("Hi.", 0, 0.3, speaker=0), Word("Hello.", 0.5, 0.9, speaker=1))
    out = io.StringIO()
    CaptionPrinter(out, tty=False).on_message(_message("Hi. Hello.", final=True, words=words))
    assert out.getvalue() == "Speaker 0: Hi.\nSpeaker 1: Hello.\n"


def test_text_output_is_one_sentence_per_line() -> None:
    words = tuple(
        Word(w, i * 0.3, i * 0.3 + 0.2, speaker=s)
        for i, (w, s) in enumerate([("Mr.", 0), ("Smith", 0), ("left.", 0), ("Yes.", 1)])
    )
    assert render(FileResult("x", words=words), "text") == (
        "Speaker 0: Mr. Smith left.\nSpeaker 1: Yes.\n"
    )
    assert render(FileResult("No words here."), "text") == "No words here.\n"


@pytest.fixture
def fake_microphone(monkeypatch: pytest.MonkeyPatch, librivox_files: list[Path]) -> ModuleType:
    spec = importlib.util.spec_from_file_location("sounddevice", FAKE_SOUNDDEVICE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "sounddevice", module)
    monkeypatch.setenv("FAKE_MIC_WAV", str(librivox_files[1]))
    monkeypatch.setenv("FAKE_MIC_SPEED", "20")
    return module


def test_microphone_frames_deliver_the_device_audio_in_order(
    fake_microphone: ModuleType, librivox_files: list[Path]
) -> None:
    clip = read_wav_int16(librivox_files[1]).tobytes()

    async def record() -> list[bytes]:
        frames = []
        async for frame in microphone_frames(frame_ms=20):
            frames.append(frame)
            if len(frames) * 640 >= len(clip):
                break
        return frames

    frames = asyncio.run(record())
    assert {len(f) for f in frames} == {640}  # 20 ms of 16 kHz linear16
    assert b"".join(frames)[: len(clip)] == clip
    stream = fake_microphone.opened[-1]
    assert stream.samplerate == 16000 and stream.blocksize == 320
    assert not stream.active and stream.closed  # released when the consumer stopped


def test_without_sounddevice_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # makes `import sounddevice` fail

    async def first_frame() -> None:
        await anext(microphone_frames())

    with pytest.raises(ImportError, match=r"pulse-stt\[mic\]"):
        asyncio.run(first_frame())
    monkeypatch.setenv("PULSE_STT_API_KEY", "k")
    assert main(["stream", "--mic"]) == 2
    assert "pulse-stt[mic]" in MIC_EXTRA_HINT


def test_stopping_ends_the_frames_at_once_even_while_a_frame_is_awaited() -> None:
    async def slow_frames() -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.sleep(3600)  # a silent device that never delivers again
        yield b"never"

    async def scenario() -> tuple[list[bytes], float]:
        stop = asyncio.Event()
        got: list[bytes] = []
        asyncio.get_running_loop().call_later(0.2, stop.set)
        started = time.monotonic()
        async for frame in until_stopped(slow_frames(), stop):
            got.append(frame)
        return got, time.monotonic() - started

    got, took = asyncio.run(scenario())
    assert got == [b"first"] and took < 2


def test_output_planning(tmp_path: Path) -> None:
    a, b = tmp_path / "a.wav", tmp_path / "sub" / "b.mp3"
    assert _output_paths([a], None, "srt") == [None]
    assert _output_paths([a], str(tmp_path / "out.srt"), "srt") == [tmp_path / "out.srt"]
    assert _output_paths([a], str(tmp_path), "vtt") == [tmp_path / "a.vtt"]
    assert _output_paths([a, b], str(tmp_path / "new"), "json") == [
        tmp_path / "new" / "a.json",
        tmp_path / "new" / "b.json",
    ]
    with pytest.raises(UsageError, match="-o DIR"):
        _output_paths([a, b], None, "vtt")
    with pytest.raises(UsageError, match="same name"):
        _output_paths([a, tmp_path / "x" / "a.flac"], str(tmp_path / "o"), "text")


@pytest.mark.parametrize(
    "argv",
    [
        ["stream"],  # neither FILE nor --mic
        ["stream", "FILE", "--mic"],
        ["stream", "--mic", "--realtime"],
        ["stream", "/no/such/file.wav"],
        ["transcribe", "/no/such/file.wav"],
        ["transcribe", "FILE", "--keywords", "a:3"],  # keywords are WebSocket-only
        ["transcribe", "FILE", "--mode", "stream", "--model", "pulse-pro"],
        ["transcribe", "FILE", "FILE", "--format", "srt"],
        ["transcribe", "FILE", "--language", "not a language"],
        ["transcribe", "FILE", "--format", "docx"],  # argparse's own usage error
    ],
)
def test_usage_errors_exit_with_2(
    argv: list[str],
    librivox_files: list[Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PULSE_STT_API_KEY", "k")
    argv = [str(librivox_files[0]) if arg == "FILE" else arg for arg in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse
        code = int(exc.code or 0)
    assert code == 2
    assert capsys.readouterr().err.strip()


def test_a_missing_key_is_a_usage_error_that_says_how_to_give_one(
    librivox_files: list[Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PULSE_STT_API_KEY", raising=False)
    assert main(["transcribe", str(librivox_files[0])]) == 2
    assert "PULSE_STT_API_KEY" in capsys.readouterr().err
