"""`pulse-stt transcribe` and `pulse-stt stream`: the client library as commands.

They are clients: they need a server's URL and key (`--url`/`--key` or `PULSE_STT_URL`/
`PULSE_STT_API_KEY`), never server settings. Exit codes: 0 done, 2 usage error (bad
arguments, missing file, no key), 1 the server refused or could not be reached (with a
message that says which), 130 a second Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import shutil
import signal
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from pulse_stt.client.endpoints import KEY_ENV, URL_ENV
from pulse_stt.client.errors import (
    AuthenticationError,
    ParameterError,
    PulseConnectionError,
    PulseError,
)
from pulse_stt.client.messages import (
    FileResult,
    Message,
    ServerError,
    Transcription,
    Word,
)
from pulse_stt.client.options import FileOptions, StreamOptions
from pulse_stt.client.sources import (
    audio_duration,
    file_frames,
    import_sounddevice,
    microphone_frames,
)
from pulse_stt.client.streaming import AsyncPulseClient
from pulse_stt.client.subtitles import sentences, speaker_label, to_srt, to_vtt

FORMATS = ("text", "json", "srt", "vtt")
EXTENSIONS = {"text": ".txt", "json": ".json", "srt": ".srt", "vtt": ".vtt"}
CLEAR_LINE = "\r\x1b[2K"
EXIT_OK, EXIT_SERVER, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
CLIENT_COMMANDS = ("transcribe", "stream")


class UsageError(Exception):
    """Bad arguments: exit code 2."""


# --- arguments ---------------------------------------------------------------------------


def _add_connection_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        help=f"the server, http(s)://host[:port] (default: ${URL_ENV}, else "
        "http://127.0.0.1:8000; https://api.smallest.ai for the hosted API)",
    )
    parser.add_argument("--key", help=f"API key (default: ${KEY_ENV})")


def _add_shaping_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--language", help="ISO 639-1 code (en, de, …), multi-eu or multi (server default)"
    )
    parser.add_argument("--diarize", action="store_true", help="label words with speakers")
    parser.add_argument(
        "--itn", action="store_true", help="written form for numbers, dates, currencies"
    )
    parser.add_argument("--redact-pii", action="store_true", help="redact names, phones, …")
    parser.add_argument("--redact-pci", action="store_true", help="redact card numbers, …")
    parser.add_argument(
        "--keywords",
        help="boost words: 'Kubernetes:6,gRPC:3' (intensifier 0-20); streaming only",
    )


def add_client_commands(commands: Any) -> None:
    """Add `transcribe` and `stream` to the `pulse-stt` subcommands."""
    transcribe = commands.add_parser(
        "transcribe",
        help="transcribe audio files (REST or streaming); text, JSON, SRT or WebVTT",
        description="Transcribe whole audio files of any container (WAV, MP3, FLAC, Ogg, "
        "WebM, M4A…) with a Pulse server.",
    )
    transcribe.add_argument("files", nargs="+", metavar="FILE", help="audio files")
    _add_connection_flags(transcribe)
    transcribe.add_argument(
        "--mode",
        choices=("rest", "stream"),
        default="rest",
        help="rest: one POST per file (default); stream: over the WebSocket as fast as possible",
    )
    transcribe.add_argument("--format", choices=FORMATS, default="text", help="output format")
    transcribe.add_argument(
        "-o",
        "--output",
        help="output file, or a directory (one FILE.<format> per input; required for "
        "several files as srt/vtt); default: standard output",
    )
    transcribe.add_argument(
        "--model",
        choices=("pulse", "pulse-pro"),
        default="pulse",
        help="REST model: pulse-pro is slower and more accurate",
    )
    _add_shaping_flags(transcribe)
    progress = transcribe.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        action="store_true",
        default=None,
        help="show a progress bar (default: when stderr is a terminal)",
    )
    progress.add_argument("--no-progress", dest="progress", action="store_false")

    stream = commands.add_parser(
        "stream",
        help="live captions from the microphone (--mic) or a file (--realtime)",
        description="Stream audio to a Pulse server and print captions as they come: on a "
        "terminal the current partial is rewritten in place and each final kept on its "
        "own line. Ctrl-C ends the stream cleanly (the last final still arrives); a "
        "second Ctrl-C quits at once.",
    )
    stream.add_argument("file", nargs="?", metavar="FILE", help="an audio file to stream")
    stream.add_argument(
        "--mic",
        action="store_true",
        help="stream the microphone (needs: pip install 'pulse-stt[mic]')",
    )
    stream.add_argument("--device", help="microphone device index or name (see --list-devices)")
    stream.add_argument(
        "--list-devices", action="store_true", help="list audio input devices and exit"
    )
    stream.add_argument(
        "--realtime",
        action="store_true",
        help="send FILE at real-time pace, as a live caller would (default: as fast as possible)",
    )
    _add_connection_flags(stream)
    _add_shaping_flags(stream)
    stream.add_argument(
        "--eou-timeout-ms", type=int, help="silence that ends a turn (100-10000, default 800)"
    )
    stream.add_argument(
        "--partials",
        action="store_true",
        help="when stdout is not a terminal, print partials too, as '[partial] …' lines",
    )
    stream.add_argument(
        "--json", action="store_true", help="print every server message as one JSON line"
    )


def run_client_command(args: argparse.Namespace) -> int:
    command = transcribe_command if args.command == "transcribe" else stream_command
    try:
        return command(args)
    except UsageError as exc:
        print(f"pulse-stt {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # `stream` handles Ctrl-C itself; elsewhere it just stops
        print(file=sys.stderr)
        return EXIT_INTERRUPTED


# --- errors ------------------------------------------------------------------------------


def describe_error(exc: PulseError, base_url: str) -> str:
    """One line a person can act on."""
    if isinstance(exc, AuthenticationError):
        return (
            f"the server refused the API key (HTTP 401: {exc.message.rstrip('.')}). Pass --key "
            f"or set {KEY_ENV} to a valid key (`pulse-stt keys create` makes one for pulse-stt)."
        )
    if isinstance(exc, ParameterError):
        allowed = f" Allowed: {exc.allowed}." if exc.allowed and len(exc.allowed) < 200 else ""
        return f"the server rejected the parameter {exc.param!r}: {exc.message}{allowed}"
    if isinstance(exc, PulseConnectionError):
        return f"{exc.message}. Is the server running at {base_url}? Pass --url or set {URL_ENV}."
    status = f" (HTTP {exc.status_code})" if exc.status_code else ""
    return f"{exc.message}{status}"


def _client(args: argparse.Namespace) -> AsyncPulseClient:
    try:
        return AsyncPulseClient(args.url, args.key)
    except PulseError as exc:  # no key, unusable URL
        raise UsageError(exc.message) from None


def _keywords(args: argparse.Namespace) -> str | None:
    return args.keywords or None


# --- transcribe --------------------------------------------------------------------------


def _output_paths(files: Sequence[Path], output: str | None, fmt: str) -> list[Path | None]:
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
    return "".join(_line(group) + "\n" for group in sentences(result.words))


def _line(words: Sequence[Word]) -> str:
    speaker = words[0].speaker
    text = " ".join(w.word for w in words)
    return f"{speaker_label(speaker)}: {text}" if speaker is not None else text


def _speaker_runs(words: Sequence[Word]) -> list[str]:
    """One line per run of consecutive words of the same speaker."""
    return [_line(list(run)) for _, run in itertools.groupby(words, key=lambda w: w.speaker)]


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


def _shaping_options(args: argparse.Namespace) -> dict[str, Any]:
    """The options of the shaping flags; an unset switch is left to the server's default."""
    return {
        "language": args.language,
        "diarize": args.diarize or None,
        "itn_normalize": args.itn or None,
        "redact_pii": args.redact_pii or None,
        "redact_pci": args.redact_pci or None,
    }


def _transcribe_options(args: argparse.Namespace) -> FileOptions | StreamOptions:
    """Word timings always: subtitles need them and text is printed one sentence a line."""
    shaping = {**_shaping_options(args), "word_timestamps": True}
    try:
        if args.mode == "rest":
            return FileOptions(model=args.model, **shaping)
        return StreamOptions(keywords=_keywords(args), **shaping)
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
    options = _transcribe_options(args)
    outputs = _output_paths(files, args.output, args.format)
    client = _client(args)
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
        await asyncio.to_thread(_write, done.result, path, output, args.format, len(files) > 1)
    return status


def _write(result: FileResult, path: Path, output: Path | None, fmt: str, several: bool) -> None:
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


# --- stream ------------------------------------------------------------------------------


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
            _speaker_runs(message.words)
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


async def until_stopped(frames: AsyncIterator[bytes], stop: asyncio.Event) -> AsyncIterator[bytes]:
    """`frames` until `stop` is set (at once, even while waiting for the next frame)."""
    stopper = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            getter = asyncio.ensure_future(anext(frames))  # type: ignore[arg-type]
            await asyncio.wait({getter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await getter
                return
            try:
                frame = getter.result()
            except StopAsyncIteration:
                return
            yield frame
    finally:
        stopper.cancel()
        aclose = getattr(frames, "aclose", None)
        if aclose is not None:
            await aclose()


def _list_devices() -> int:
    try:
        sounddevice = import_sounddevice()
    except ImportError as exc:
        print(f"pulse-stt stream: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(sounddevice.query_devices())
    return EXIT_OK


def stream_command(args: argparse.Namespace) -> int:
    if args.list_devices:
        return _list_devices()
    if args.mic == bool(args.file):
        raise UsageError("give either FILE or --mic.")
    if args.realtime and args.mic:
        raise UsageError("--realtime paces a FILE; the microphone is live already.")
    if args.file and not Path(args.file).is_file():
        raise UsageError(f"no such file: {args.file}")
    try:
        options = StreamOptions(
            **_shaping_options(args),
            word_timestamps=True if args.diarize else None,
            keywords=_keywords(args),
            eou_timeout_ms=args.eou_timeout_ms,
        )
    except ParameterError as exc:
        raise UsageError(str(exc)) from None
    client = _client(args)
    if args.mic:
        try:
            import_sounddevice()  # before connecting: a missing extra is a usage error
        except ImportError as exc:
            raise UsageError(str(exc)) from None
        device: int | str | None = args.device
        if isinstance(device, str) and device.isdigit():
            device = int(device)
        frames = microphone_frames(device=device)
    else:
        frames = file_frames(args.file, realtime=args.realtime)
    printer = CaptionPrinter(
        sys.stdout, tty=sys.stdout.isatty() and not args.json, show_partials=args.partials
    )
    return asyncio.run(_stream(client, frames, options, printer, as_json=args.json))


async def _stream(
    client: AsyncPulseClient,
    frames: AsyncIterator[bytes],
    options: StreamOptions,
    printer: CaptionPrinter,
    *,
    as_json: bool,
) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    main = asyncio.current_task()
    assert main is not None
    interrupts = 0

    def on_interrupt() -> None:
        nonlocal interrupts
        interrupts += 1
        if interrupts == 1:
            printer.finish()
            print(
                "pulse-stt: stopping; waiting for the last transcript (Ctrl-C again to quit now)",
                file=sys.stderr,
                flush=True,
            )
            stop.set()
        else:
            main.cancel()

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        async for message in client.stream(until_stopped(frames, stop), options):
            if as_json:
                print(json.dumps(dict(message.raw), ensure_ascii=False), flush=True)
            else:
                printer.on_message(message)
            if isinstance(message, ServerError):
                printer.finish()
                print(f"pulse-stt: server: {message.message}", file=sys.stderr, flush=True)
    except asyncio.CancelledError:
        printer.finish()
        return EXIT_INTERRUPTED
    except ImportError as exc:  # the microphone extra is missing
        print(f"pulse-stt stream: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except PulseError as exc:
        printer.finish()
        print(f"pulse-stt: {describe_error(exc, client.base_url)}", file=sys.stderr)
        return EXIT_SERVER
    except (OSError, ValueError) as exc:  # the microphone or the file failed
        printer.finish()
        print(f"pulse-stt stream: {exc}", file=sys.stderr)
        return EXIT_SERVER
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    printer.finish()
    return EXIT_OK
