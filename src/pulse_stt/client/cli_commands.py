"""`pulse-stt transcribe` and `pulse-stt stream`: the client library as commands — their
arguments and dispatch (cli_transcribe, cli_stream; shared bits in cli_common, output in
cli_output).

They are clients: they need a server's URL and key (`--url`/`--key` or `PULSE_STT_URL`/
`PULSE_STT_API_KEY`), never server settings, and run with the plain `pip install pulse-stt`.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from pulse_stt.client.cli_common import EXIT_INTERRUPTED, EXIT_USAGE, UsageError
from pulse_stt.client.cli_output import FORMATS
from pulse_stt.client.cli_stream import stream_command
from pulse_stt.client.cli_transcribe import transcribe_command
from pulse_stt.client.endpoints import KEY_ENV, URL_ENV

CLIENT_COMMANDS = ("transcribe", "stream")


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
