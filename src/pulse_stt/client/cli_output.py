"""How the client commands show results: a file's result as text (one sentence a line,
with speakers), JSON, SRT or WebVTT, where each goes, and live captions."""

from __future__ import annotations

import itertools
import json
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from pulse_stt.client.cli_common import UsageError
from pulse_stt.client.messages import FileResult, Message, Transcription, Word
from pulse_stt.client.subtitles import sentences, speaker_label, to_srt, to_vtt

FORMATS = ("text", "json", "srt", "vtt")
EXTENSIONS = {"text": ".txt", "json": ".json", "srt": ".srt", "vtt": ".vtt"}
CLEAR_LINE = "\r\x1b[2K"


def output_paths(files: Sequence[Path], output: str | None, fmt: str) -> list[Path | None]:
    """Where each file's result goes (None: standard output)."""
    if output is None or output == "-":
        if len(files) > 1 and fmt in ("srt", "vtt"):
            raise UsageError(
                f"{len(files)} files as {fmt} need -o DIR (one subtitle file per input)."
            )
        return [None] * len(files)
    target = Path(output)
    if len(files) == 1 and not target.is_dir():
        if not target.parent.is_dir():
            raise UsageError(f"the folder of -o {output} does not exist.")
        return [target]
    if target.exists() and not target.is_dir():
        raise UsageError(f"-o {output} is a file; give a directory for several inputs.")
    target.mkdir(parents=True, exist_ok=True)
    paths: list[Path | None] = [target / (f.stem + EXTENSIONS[fmt]) for f in files]
    if len(set(paths)) != len(paths):
        raise UsageError("two inputs have the same name; transcribe them to different -o dirs.")
    return paths


def render(result: FileResult, fmt: str) -> str:
    """A result in an output format (text: one sentence per line, with speakers)."""
    if fmt == "json":
        return json.dumps(result.to_dict(), indent=2, ensure_ascii=False) + "\n"
    if fmt == "srt":
        return to_srt(result.words)
    if fmt == "vtt":
        return to_vtt(result.words)
    if not result.words:
        return result.transcription + "\n" if result.transcription else ""
    return "".join(caption_line(group) + "\n" for group in sentences(result.words))


def caption_line(words: Sequence[Word]) -> str:
    speaker = words[0].speaker
    text = " ".join(w.word for w in words)
    return f"{speaker_label(speaker)}: {text}" if speaker is not None else text


def speaker_runs(words: Sequence[Word]) -> list[str]:
    """One line per run of consecutive words of the same speaker."""
    return [caption_line(list(run)) for _, run in itertools.groupby(words, key=lambda w: w.speaker)]


def write_result(
    result: FileResult, path: Path, output: Path | None, fmt: str, several: bool
) -> None:
    if output is not None:
        output.write_text(render(result, fmt), encoding="utf-8")
        return
    if several and fmt == "json":  # JSON Lines: one object per input
        print(json.dumps({"file": str(path), **result.to_dict()}, ensure_ascii=False))
    elif several:
        print(f"==> {path} <==")
        sys.stdout.write(render(result, fmt))
    else:
        sys.stdout.write(render(result, fmt))
    sys.stdout.flush()


class CaptionPrinter:
    """Live captions. On a terminal the current partial is rewritten in place (`\\r` and
    an ANSI clear-line, cut to the terminal's width so it never wraps) and each final is
    kept on its own line; elsewhere only finals are printed, or every partial as a
    `[partial] …` line with `show_partials`."""

    def __init__(
        self,
        out: TextIO,
        *,
        tty: bool,
        show_partials: bool = False,
        width: Callable[[], int] = lambda: shutil.get_terminal_size().columns,
    ) -> None:
        self.out = out
        self.tty = tty
        self.show_partials = show_partials
        self.width = width
        self._partial_shown = False

    def on_message(self, message: Message) -> None:
        if not isinstance(message, Transcription):
            return
        if message.is_final:
            self._final(message)
        elif self.tty:
            self._rewrite(message.transcript)
        elif self.show_partials and message.transcript:
            self.out.write(f"[partial] {message.transcript}\n")
            self.out.flush()

    def _rewrite(self, text: str) -> None:
        room = max(self.width() - 1, 10)
        if len(text) > room:  # show the newest whole words
            tail = text[-(room - 1) :]
            if " " in tail and not text[-room].isspace():
                tail = tail.split(" ", 1)[1]
            text = "…" + tail
        self.out.write(CLEAR_LINE + text)
        self.out.flush()
        self._partial_shown = True

    def _final(self, message: Transcription) -> None:
        lines = (
            speaker_runs(message.words)
            if any(w.speaker is not None for w in message.words)
            else [message.transcript]
        )
        lines = [line for line in lines if line]
        prefix = "[final] " if self.show_partials and not self.tty else ""
        if self.tty and self._partial_shown:
            self.out.write(CLEAR_LINE)
            self._partial_shown = False
        for line in lines:
            self.out.write(prefix + line + "\n")
        self.out.flush()

    def finish(self) -> None:
        if self.tty and self._partial_shown:
            self.out.write(CLEAR_LINE)
            self.out.flush()
            self._partial_shown = False
