"""Log format of the server: one JSON object per line (default) or plain text.

Every line carries timestamp, level, logger and message, plus the context fields a call
passes with `extra=` (`session_id` for WebSocket sessions, `request_id` for REST requests,
and the figures of session start/end lines). uvicorn's own loggers go through the same
handler. Transcript text is logged only by callers that check `log_transcripts`; secrets
are masked in every line as it is written (message, context fields, traceback): the value
of every query parameter whose name reads as a secret's once decoded (`?token=`,
`?%74oken=`, `?API-KEY=`, ...), and context fields with such a name; ops/secrets.py decides
what a secret's name is.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
from collections.abc import MutableMapping
from typing import IO, Any, Literal

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

from pulse_stt.ops.secrets import REDACTED, is_secret_name, mask_secrets

LogFormat = Literal["json", "text"]

# uvicorn attaches an ANSI-coloured copy of some messages (noise in a log file); Python
# 3.12 adds taskName to every record.
_SKIPPED_ATTRS = (*RESERVED_ATTRS, "taskName", "color_message")
__all__ = ["REDACTED", "ContextLogger", "RedactSecrets", "configure_logging", "mask_secrets"]
# Libraries that give their logger a handler (and level) of their own when imported: the
# module that does it (cheap to import) and the logger, taken over in `configure_logging`.
_SELF_HANDLING_LOGGERS = {"NeMo-text-processing": "nemo_text_processing.utils.logging"}


class RedactSecrets(logging.Filter):
    """Mask secrets in the message (uvicorn logs every path with its query) and context
    fields named like a secret. `MaskingFormatter` masks the written line as well."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message)
        if masked != message:
            record.msg, record.args = masked, ()
        for name, _ in _context_fields(record):
            if is_secret_name(name):
                setattr(record, name, REDACTED)
        return True


class MaskingFormatter(logging.Formatter):
    """Another formatter's line with secrets masked: whatever a line carries (a URL in a
    context field, an exception message in its traceback) is masked after decoding."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        return mask_secrets(self._inner.format(record))


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
    inner = json_formatter() if log_format == "json" else TextFormatter()
    handler.setFormatter(MaskingFormatter(inner))
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
