"""`pulse-stt transcribe`: whole files over REST (one POST each) or the WebSocket (as fast
as they decode), each result as text, JSON, SRT or WebVTT, with a progress bar."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pulse_stt.client.cli_common import (
    EXIT_OK,
    EXIT_SERVER,
    UsageError,
    describe_error,
    keywords_arg,
    make_client,
    shaping_options,
)
from pulse_stt.client.cli_output import output_paths, write_result
from pulse_stt.client.errors import (
    AuthenticationError,
    ParameterError,
    PulseConnectionError,
    PulseError,
)
from pulse_stt.client.messages import FileResult, ServerError, Transcription
from pulse_stt.client.options import FileOptions, StreamOptions
from pulse_stt.client.sources import audio_duration, file_frames, import_file_decoder
from pulse_stt.client.streaming import AsyncPulseClient


class _Progress:
    """A tqdm bar on stderr (shown after a second, so short files get none)."""

    def __init__(self, enabled: bool, forced: bool, **kwargs: Any) -> None:
        self._bar: Any = None
        if enabled:
            from tqdm import tqdm

            self._bar = tqdm(file=sys.stderr, leave=False, delay=0 if forced else 1.0, **kwargs)

    def update_to(self, value: float) -> None:
        if self._bar is not None and value > self._bar.n:
            self._bar.update(value - self._bar.n)

    def note(self, text: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


@dataclass
class _Transcribed:
    result: FileResult
    warnings: list[str] = field(default_factory=list)


def _transcribe_options(args: argparse.Namespace) -> FileOptions | StreamOptions:
    """Word timings always: subtitles need them and text is printed one sentence a line."""
    shaping = {**shaping_options(args), "word_timestamps": True}
    try:
        if args.mode == "rest":
            return FileOptions(model=args.model, **shaping)
        return StreamOptions(keywords=keywords_arg(args), **shaping)
    except ParameterError as exc:
        raise UsageError(str(exc)) from None


async def _transcribe_rest(
    client: AsyncPulseClient, path: Path, options: FileOptions, progress: _Progress
) -> _Transcribed:
    def on_upload(sent: int, total: int | None) -> None:
        progress.update_to(sent)
        if total is not None and sent >= total:
            progress.note("uploaded; transcribing")

    return _Transcribed(await client.transcribe_file(path, options, progress=on_upload))


async def _transcribe_stream(
    client: AsyncPulseClient, path: Path, options: StreamOptions, progress: _Progress
) -> _Transcribed:
    """The bar counts audio transcribed (the end of the newest words received): sending
    is quick, the server's work is what takes the time."""
    sent = 0.0

    def on_audio(seconds: float) -> None:
        nonlocal sent
        sent = seconds
        progress.note(f"{seconds:.0f} s sent")

    finals: list[Transcription] = []
    warnings: list[str] = []
    async for message in client.stream(file_frames(path, on_progress=on_audio), options):
        if isinstance(message, Transcription):
            if message.words:  # partials too: they show how far the server has heard
                progress.update_to(round(message.words[-1].end, 1))
            if message.is_final:
                finals.append(message)
        elif isinstance(message, ServerError):
            warnings.append(message.message)
    progress.update_to(round(sent, 1))
    return _Transcribed(FileResult.from_finals(finals, duration=sent), warnings)


def transcribe_command(args: argparse.Namespace) -> int:
    files = [Path(f) for f in args.files]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise UsageError(f"no such file: {', '.join(missing)}")
    if args.keywords and args.mode == "rest":
        raise UsageError("--keywords works only when streaming; add --mode stream.")
    if args.model != "pulse" and args.mode == "stream":
        raise UsageError(f"--model {args.model} has no streaming transport; use --mode rest.")
    if args.mode == "stream":
        try:
            import_file_decoder()  # before connecting: a missing extra is a usage error
        except ImportError as exc:
            raise UsageError(str(exc)) from None
    options = _transcribe_options(args)
    outputs = output_paths(files, args.output, args.format)
    client = make_client(args)
    return asyncio.run(_transcribe_all(client, files, outputs, options, args))


async def _transcribe_all(
    client: AsyncPulseClient,
    files: Sequence[Path],
    outputs: Sequence[Path | None],
    options: FileOptions | StreamOptions,
    args: argparse.Namespace,
) -> int:
    show_progress = args.progress if args.progress is not None else sys.stderr.isatty()
    status = EXIT_OK
    for path, output in zip(files, outputs, strict=True):
        if isinstance(options, FileOptions):
            progress = _Progress(
                show_progress,
                bool(args.progress),
                total=path.stat().st_size,
                unit="B",
                unit_scale=True,
                unit_divisor=1024,
                desc=path.name,
            )
            job = _transcribe_rest(client, path, options, progress)
        else:
            duration = await asyncio.to_thread(audio_duration, path)
            shape = (
                {
                    "total": round(duration, 1),
                    "bar_format": "{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s "
                    "transcribed [{elapsed}<{remaining}{postfix}]",
                }
                if duration
                else {"unit": "s"}
            )
            progress = _Progress(show_progress, bool(args.progress), desc=path.name, **shape)
            job = _transcribe_stream(client, path, options, progress)
        try:
            with contextlib.closing(progress):  # the bar is closed before anything is printed
                done = await job
        except (AuthenticationError, ParameterError, PulseConnectionError) as exc:
            print(f"pulse-stt: {describe_error(exc, client.base_url)}", file=sys.stderr)
            return EXIT_SERVER  # the same for every file: stop here
        except PulseError as exc:
            print(f"pulse-stt: {path}: {describe_error(exc, client.base_url)}", file=sys.stderr)
            status = EXIT_SERVER
            continue
        except ValueError as exc:  # the file could not be decoded here (stream mode)
            print(f"pulse-stt: {path}: {exc}", file=sys.stderr)
            status = EXIT_SERVER
            continue
        for warning in done.warnings:
            print(f"pulse-stt: {path}: server: {warning}", file=sys.stderr)
        await asyncio.to_thread(
            write_result, done.result, path, output, args.format, len(files) > 1
        )
    return status
