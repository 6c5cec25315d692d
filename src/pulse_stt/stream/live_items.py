"""What a live stream owes its client, in order (stream/live.py): an event ready to send,
a pass still being decoded, or the end."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pulse_stt.engine.types import Hypothesis
from pulse_stt.speakers.encoder import TurnWindows
from pulse_stt.stream.events import ErrorEvent, PongEvent, VadEvent, WarningEvent
from pulse_stt.stream.session import UtteranceAudio
from pulse_stt.stream.stabilizer import PartialRequest


@dataclass
class Ready:
    event: VadEvent | ErrorEvent | PongEvent | WarningEvent


@dataclass(eq=False)
class Pending:
    work: UtteranceAudio
    # The pass, as the turn's hypothesis (a final's is whole: stitched if it decoded only a
    # tail); None: nothing to decode.
    result: asyncio.Future[Hypothesis | None] | None
    voices: asyncio.Future[TurnWindows] | None  # speaker embeddings (diarize=true)
    # What the pass decodes: where in the turn's audio it starts, the words before that.
    request: PartialRequest
    # Set when the turn's final follows: a partial not worth waiting for then.
    superseded: asyncio.Event = field(default_factory=asyncio.Event)


class Closed:
    """Queued after the terminal final: nothing follows."""


Owed = Ready | Pending | Closed


def retrieve(future: asyncio.Future[Hypothesis | None]) -> None:
    """Done callback of a pass nobody waits for: mark its failure, if any, as seen."""
    if not future.cancelled():
        future.exception()
