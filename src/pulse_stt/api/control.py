"""Client → server text frames."""

from __future__ import annotations

from enum import Enum

from pulse_stt.api.bodies import loads_json


class Control(Enum):
    FINALIZE = "finalize"
    CLOSE_STREAM = "close_stream"


_TYPES = {
    "finalize": Control.FINALIZE,
    "close_stream": Control.CLOSE_STREAM,
    "end": Control.CLOSE_STREAM,
}
HINT = 'send {"type":"finalize"} or {"type":"close_stream"} as text, and audio as binary frames'


class ControlError(ValueError):
    pass


def parse_control(text: str) -> Control:
    """Parse a text frame; raises ControlError saying what was wrong and what to send."""
    try:
        payload = loads_json(text)
    except ValueError:
        raise ControlError(f"text frame is not JSON; {HINT}.") from None
    if not isinstance(payload, dict):
        raise ControlError(f"text frame must be a JSON object; {HINT}.")
    kind = payload.get("type")
    if not isinstance(kind, str) or kind not in _TYPES:
        raise ControlError(f"unknown message type {kind!r}; {HINT}.")
    return _TYPES[kind]
