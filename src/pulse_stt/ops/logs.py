"""Log format of the server: one JSON object per line (default) or plain text.

Every line carries timestamp, level, logger and message, plus the context fields a call
passes with `extra=` (`session_id` for WebSocket sessions, `request_id` for REST requests,
and the figures of session start/end lines). uvicorn's own loggers go through the same
handler. Transcript text is logged only by callers that check `log_transcripts`; secrets
that could ride in a URL (`?token=`, `?api_key=`, ...) are masked in every line.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import re
import sys
from collections.abc import MutableMapping
from typing import IO, Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["json", "text"]

# uvicorn attaches an ANSI-coloured copy of some messages (noise in a log file); Python
# 3.12 adds taskName to every record.
_SKIPPED_ATTRS = (*RESERVED_ATTRS, "taskName", "color_message")
_SECRET_QUERY = re.compile(
    r"([?&](?:token|access_token|api_key|apikey|key|auth|authorization|password|secret)=)"
    r"[^&\s\"']*",
    re.IGNORECASE,
)
REDACTED = "[redacted]"
# Libraries that give their logger a handler (and level) of their own when imported: the
# module that does it (cheap to import) and the logger, taken over in `configure_logging`.
_SELF_HANDLING_LOGGERS = {"NeMo-text-processing": "nemo_text_processing.utils.logging"}


class RedactSecrets(logging.Filter):
    """Mask credential-like query parameters (uvicorn logs every path with its query)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "=" in message:
            masked = _SECRET_QUERY.sub(r"\g<1>" + REDACTED, message)
            if masked != message:
                record.msg, record.args = masked, ()
        return True


class ContextLogger(logging.LoggerAdapter[logging.Logger]):
    """A logger that adds fixed context fields (a session id) to every line, merged with
    the line's own `extra=` (Python 3.11's LoggerAdapter would replace them)."""

    def process(self, msg: Any, kwargs: MutableMapping[str, Any]) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def json_formatter() -> logging.Formatter:
    return JsonFormatter(
        ["levelname", "name", "message"],
        rename_fields={"levelname": "level", "name": "logger"},
        reserved_attrs=_SKIPPED_ATTRS,
        timestamp=True,
    )


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value ...`, the context fields at the end."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = _context_fields(record)
        if not context:
            return line
        head, newline, rest = line.partition("\n")  # keep a traceback below the fields
        fields = " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in context)
        return f"{head} {fields}{newline}{rest}"


def _context_fields(record: logging.LogRecord) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in record.__dict__.items() if k not in _SKIPPED_ATTRS]


def configure_logging(
    *, level: str, log_format: LogFormat, stream: IO[str] | None = None
) -> logging.Handler:
    """Route every logger (uvicorn's included, when it is given `log_config=None`) through
    one handler on stderr with the chosen format. Returns the handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(json_formatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RedactSecrets())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name, module in _SELF_HANDLING_LOGGERS.items():
        _adopt_library_logger(name, module)
    return handler


def _adopt_library_logger(name: str, module: str) -> None:
    """Make a library's logger use our handler and level like every other logger."""
    with contextlib.suppress(ImportError):
        importlib.import_module(module)
    logger = logging.getLogger(name)
    for own in list(logger.handlers):
        logger.removeHandler(own)
    logger.setLevel(logging.NOTSET)
    logger.propagate = True
