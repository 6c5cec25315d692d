"""`pulse-stt serve | keys | model | settings | transcribe | stream`.

Every settings field is also a flag (`--compute-type int8`); flags override
`PULSE_STT_*` environment variables, which override defaults. `transcribe` and `stream`
are clients and work with the plain `pip install pulse-stt`; the server commands need
the `server` extra and say so when it is missing.
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from typing import Any

from pulse_stt.client.cli_commands import CLIENT_COMMANDS, add_client_commands, run_client_command

try:  # the `server` extra; without it only the client commands run
    from pydantic import ValidationError

    from pulse_stt.config import Settings, setting_env, setting_flag
    from pulse_stt.ops.logs import configure_logging
except ImportError:
    pass

SERVER_COMMANDS = ("serve", "model", "settings", "keys")
SERVER_EXTRA_HINT = "pip install 'pulse-stt[server]'"
# Top-level modules the server commands need (a sample of the `server` extra, checked
# without importing them).
SERVER_MODULES = (
    "pydantic_settings",
    "pythonjsonlogger",
    "sqlalchemy",
    "starlette",
    "uvicorn",
    "faster_whisper",
    "ctranslate2",
    "onnxruntime",
    "av",
    "soxr",
    "prometheus_client",
    "nemo_text_processing",
)


def missing_server_modules() -> list[str]:
    """The SERVER_MODULES that are not installed (empty with the `server` extra)."""
    return [name for name in SERVER_MODULES if importlib.util.find_spec(name) is None]


def _add_settings_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("settings (also PULSE_STT_<NAME> environment variables)")
    for name, field in Settings.model_fields.items():
        group.add_argument(
            setting_flag(name),
            dest=f"setting_{name}",
            metavar=name.upper(),
            default=None,
            help=field.description,
        )


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {
        key.removeprefix("setting_"): value
        for key, value in vars(args).items()
        if key.startswith("setting_") and value is not None
    }
    return Settings(**overrides)


class _DenialResponseNoise(logging.Filter):
    """uvicorn's sans-I/O WebSocket protocol logs an ERROR after every denial response (our
    HTTP 400/401 before the upgrade), although the response was sent; drop that line.
    Every path of our WebSocket endpoint either accepts or denies, so it is never real."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing handshake."


def _serve(settings: Settings) -> int:
    import uvicorn
    from threadpoolctl import threadpool_limits

    from pulse_stt.api.app import create_app
    from pulse_stt.api.connections import guarded_protocol
    from pulse_stt.api.context import ServerContext
    from pulse_stt.api.shutdown import GracefulServer

    # numpy's OpenBLAS threads spin between the small matrix products of feature
    # extraction and VAD and took a third of a core under load; the model has its own.
    threadpool_limits(1, user_api="blas")
    ctx = ServerContext.create(settings)
    created_key = None
    if settings.api_key is not None:
        key = ctx.store.ensure_key(setting_env("api_key"), settings.api_key.get_secret_value())
        if key.revoked_at is not None:  # an operator's revocation outlives restarts
            logging.getLogger("pulse_stt.cli").error(
                "%s is key %d, revoked at %s: it is NOT accepted. Re-enable it with "
                "`pulse-stt keys enable %d`, or set another key.",
                setting_env("api_key"),
                key.id,
                f"{key.revoked_at:%Y-%m-%d %H:%M:%S}",
                key.id,
            )
    elif ctx.store.active_key_count() == 0:
        _, created_key = ctx.store.create_key("first-start")
    app = create_app(ctx)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        # Connections that send no complete request in time are closed (api/connections.py).
        http=guarded_protocol(
            header_timeout_s=settings.header_timeout_s,
            max_waiting=settings.max_waiting_connections,
            max_connections=settings.max_connections,
        ),
        ws="websockets-sansio",
        ws_max_size=settings.max_frame_bytes,
        log_level=settings.log_level.lower(),
        log_config=None,  # uvicorn's loggers go through our handler (ops.logs)
        lifespan="off",
    )
    # On SIGTERM/SIGINT: drain sessions (finals, then 1001) within shutdown_grace_s.
    server = GracefulServer(config, ctx)  # (configures uvicorn's loggers)
    logging.getLogger("uvicorn.error").addFilter(_DenialResponseNoise())

    original_startup = server.startup

    async def startup(sockets: Any = None) -> None:
        await original_startup(sockets=sockets)
        for sock_server in server.servers:
            for sock in sock_server.sockets:
                host, port = sock.getsockname()[:2]
                print(f"pulse-stt listening on ws://{host}:{port}/waves/v1/stt/live", flush=True)
                break
        if created_key:
            print(f"Created an API key (shown once, store it): {created_key}", flush=True)

    server.startup = startup  # type: ignore[method-assign]
    try:
        server.run()
    finally:
        ctx.close()
    return 0


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from pulse_stt.store.db import Store

    store = Store(settings.resolved_database_url())
    try:
        if args.keys_command == "create":
            key, secret = store.create_key(args.name)
            print(f"id={key.id} name={key.name}")
            print(secret)
        elif args.keys_command == "list":
            print(f"{'id':>4}  {'name':<24} {'key':<12} {'status':<8} {'audio_s':>10}  created")
            for key in store.list_keys():
                status = "revoked" if key.revoked_at else "active"
                print(
                    f"{key.id:>4}  {key.name:<24} {key.hint:<12} {status:<8} "
                    f"{key.audio_seconds:>10.1f}  {key.created_at:%Y-%m-%d %H:%M}"
                )
        elif args.keys_command == "revoke":
            if not store.revoke_key(args.id):
                print(f"no active key with id {args.id}", file=sys.stderr)
                return 1
            print(f"revoked key {args.id} (and its browser tokens)")
        elif args.keys_command == "enable":
            if not store.enable_key(args.id):
                print(f"no revoked key with id {args.id}", file=sys.stderr)
                return 1
            print(f"enabled key {args.id} (tokens it minted before the revocation stay dead)")
    finally:
        store.close()
    return 0


def _model(settings: Settings) -> int:
    from pulse_stt.engine.model_store import resolve_model_dir

    print(resolve_model_dir(settings.model, settings.cache_dir))
    return 0


def build_parser(*, server: bool = True) -> argparse.ArgumentParser:
    """`server=False` (the `server` extra is missing): the server commands are listed but
    take any arguments, so that running one says what to install."""
    parser = argparse.ArgumentParser(prog="pulse-stt", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    if not server:
        for name in SERVER_COMMANDS:
            commands.add_parser(name, help=f"(needs the server: {SERVER_EXTRA_HINT})")
        add_client_commands(commands)  # transcribe, stream
        return parser
    serve = commands.add_parser("serve", help="run the server")
    _add_settings_flags(serve)
    model = commands.add_parser(
        "model", help="make the configured model ready; print its directory"
    )
    _add_settings_flags(model)
    commands.add_parser(
        "settings", help="print the configuration reference (Markdown) of every setting"
    )
    keys = commands.add_parser("keys", help="manage API keys")
    _add_settings_flags(keys)
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    create = key_commands.add_parser("create", help="create a key and print it (once)")
    create.add_argument("--name", default="default")
    key_commands.add_parser("list", help="list keys with their audio seconds")
    revoke = key_commands.add_parser(
        "revoke", help="revoke a key by id (and its tokens); it stays revoked across restarts"
    )
    revoke.add_argument("id", type=int)
    enable = key_commands.add_parser("enable", help="make a revoked key active again")
    enable.add_argument("id", type=int)
    add_client_commands(commands)  # transcribe, stream
    return parser


def main(argv: list[str] | None = None) -> int:
    missing = missing_server_modules()
    parser = build_parser(server=not missing)
    if missing:
        args, unknown = parser.parse_known_args(argv)
        if args.command in SERVER_COMMANDS:
            print(
                f"pulse-stt {args.command}: the server is not installed (missing: "
                f"{', '.join(missing)}). Install it with:\n  {SERVER_EXTRA_HINT}",
                file=sys.stderr,
            )
            return 1
        if unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    else:
        args = parser.parse_args(argv)
    if args.command in CLIENT_COMMANDS:  # clients: no server settings needed
        return run_client_command(args)
    if args.command == "settings":
        from pulse_stt.settings_reference import reference_markdown

        print(reference_markdown(), end="")
        return 0
    try:
        settings = _settings(args)
    except ValidationError as exc:
        print(f"invalid settings:\n{exc}", file=sys.stderr)
        return 2
    configure_logging(level=settings.log_level, log_format=settings.log_format)
    if args.command == "serve":
        return _serve(settings)
    if args.command == "keys":
        return _keys(settings, args)
    return _model(settings)
