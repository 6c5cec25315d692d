"""`pulse-stt stream`: live captions from the microphone or a file; Ctrl-C ends the stream
cleanly (the last final still arrives), a second Ctrl-C quits at once."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from pulse_stt.client.cli_common import (
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_SERVER,
    EXIT_USAGE,
    UsageError,
    describe_error,
    keywords_arg,
    make_client,
    shaping_options,
)
from pulse_stt.client.cli_output import CaptionPrinter
from pulse_stt.client.errors import ParameterError, PulseError
from pulse_stt.client.messages import ServerError
from pulse_stt.client.options import StreamOptions
from pulse_stt.client.sources import (
    file_frames,
    import_file_decoder,
    import_sounddevice,
    microphone_frames,
)
from pulse_stt.client.streaming import AsyncPulseClient


async def until_stopped(frames: AsyncIterator[bytes], stop: asyncio.Event) -> AsyncIterator[bytes]:
    """`frames` until `stop` is set (at once, even while waiting for the next frame)."""
    stopper = asyncio.create_task(stop.wait())
    try:
        while not stop.is_set():
            getter = asyncio.ensure_future(anext(frames))
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
            **shaping_options(args),
            word_timestamps=True if args.diarize else None,
            keywords=keywords_arg(args),
            eou_timeout_ms=args.eou_timeout_ms,
        )
    except ParameterError as exc:
        raise UsageError(str(exc)) from None
    client = make_client(args)
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
        try:
            import_file_decoder()  # before connecting: a missing extra is a usage error
        except ImportError as exc:
            raise UsageError(str(exc)) from None
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
