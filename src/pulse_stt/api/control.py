"""Client → server text frames.

`finalize`, `close_stream` (legacy `end`) and `keepalive` are understood. A JSON object
whose `type` is some other string is an `UnknownControlError`: the runner answers it with
a `warning` and goes on (frameworks drop the session on any `error`, and a newer client's
harmless message must not do that). Anything else (not JSON, not an object, no string
`type`) is a `ControlError`, answered with an `error` (`bad_message`); the session goes on.
"""

from __future__ import annotations

from enum import Enum

from pulse_stt.api.bodies import loads_json


class Control(Enum):
    FINALIZE = "finalize"
    CLOSE_STREAM = "close_stream"
    KEEPALIVE = "keepalive"


_TYPES = {
    "finalize": Control.FINALIZE,
    "close_stream": Control.CLOSE_STREAM,
    "end": Control.CLOSE_STREAM,
    "keepalive": Control.KEEPALIVE,
}
HINT = (
    'send {"type":"finalize"}, {"type":"close_stream"} or {"type":"keepalive"} as text, '
    "and audio as binary frames"
)


class ControlError(ValueError):
    pass


class UnknownControlError(ControlError):
    """A well-formed message of a type this server does not know: ignored, with a warning."""


def parse_control(text: str) -> Control:
    """Parse a text frame; raises ControlError saying what was wrong and what to send."""
    try:
        payload = loads_json(text)
    except ValueError:
        raise ControlError(f"text frame is not JSON; {HINT}.") from None
    if not isinstance(payload, dict):
        raise ControlError(f"text frame must be a JSON object; {HINT}.")
    kind = payload.get("type")
    if not isinstance(kind, str):
        raise ControlError(f"text frame has no string 'type'; {HINT}.")
    if kind not in _TYPES:
        shown = kind if len(kind) <= 64 else kind[:64] + "..."
        raise UnknownControlError(
            f"message type {shown!r} is not known here and was ignored; {HINT}."
        )
    return _TYPES[kind]
