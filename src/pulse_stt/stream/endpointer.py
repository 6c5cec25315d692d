"""Turns per-frame speech probabilities into utterance onsets and ends.

A hysteresis on the Silero probability (onset `threshold`, offset `threshold - 0.15`)
with a short minimum run (`min_speech_ms`) to start speech, and `eou_timeout_ms` of
continuous non-speech to end the utterance (the session passes the turn's end of silence:
the client's eou_timeout_ms, or its endpointing_timeout when shorter). A pause shorter
than that is part of the utterance and reports nothing: an utterance is one turn, so a
client's speech_started / speech_ended pair it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pulse_stt.protocol import MODEL_RATE
from pulse_stt.stream.vad import FRAME_SAMPLES


class Boundary(Enum):
    SPEECH_STARTED = "speech_started"  # a new utterance
    UTTERANCE_ENDED = "utterance_ended"  # eou_timeout_ms of silence after speech


@dataclass(frozen=True)
class BoundaryEvent:
    kind: Boundary
    sample: int  # absolute 16 kHz sample index where it happened (speech start/end)
    frame: int  # index of the frame that triggered it


@dataclass(frozen=True)
class EndpointerConfig:
    eou_timeout_ms: int = 800
    threshold: float = 0.5
    min_speech_ms: int = 96  # a run this long above threshold is speech, not a click


class Endpointer:
    def __init__(self, config: EndpointerConfig) -> None:
        frame_ms = FRAME_SAMPLES * 1000 / MODEL_RATE
        self._onset = config.threshold
        self._offset = max(config.threshold - 0.15, 0.01)
        self._min_speech_frames = max(1, round(config.min_speech_ms / frame_ms))
        self._eou_frames = max(1, round(config.eou_timeout_ms / frame_ms))
        self.reset()

    def reset(self) -> None:
        """Back to silence: the next speech opens a new utterance."""
        self.in_utterance = False
        self._speaking = False
        self._run_start = -1  # first frame of the current above-threshold run (not yet speech)
        self._silent_frames = 0
        self.last_speech_frame = -1

    @property
    def silent_frames(self) -> int:
        """Frames of non-speech since the last speech frame of the open utterance."""
        return self._silent_frames if self.in_utterance else 0

    def push(self, first_frame: int, probs: list[float]) -> list[BoundaryEvent]:
        """Feed consecutive frame probabilities starting at absolute frame `first_frame`."""
        events: list[BoundaryEvent] = []
        for offset, p in enumerate(probs):
            frame = first_frame + offset
            if not self._speaking:
                if p >= self._onset:
                    if self._run_start < 0:
                        self._run_start = frame
                    if frame - self._run_start + 1 >= self._min_speech_frames:
                        if not self.in_utterance:  # speech resuming after a pause is not news
                            events.append(
                                BoundaryEvent(
                                    Boundary.SPEECH_STARTED, self._run_start * FRAME_SAMPLES, frame
                                )
                            )
                        self._speaking = True
                        self.in_utterance = True
                        self._silent_frames = 0
                        self.last_speech_frame = frame
                elif self.in_utterance:
                    self._run_start = -1
                    self._count_silence(frame, events)
                else:
                    self._run_start = -1
            elif p >= self._offset:
                self._silent_frames = 0
                self.last_speech_frame = frame
            else:
                self._speaking = False
                self._run_start = -1
                self._count_silence(frame, events)
        return events

    def _count_silence(self, frame: int, events: list[BoundaryEvent]) -> None:
        self._silent_frames += 1
        end_sample = (self.last_speech_frame + 1) * FRAME_SAMPLES
        if self._silent_frames >= self._eou_frames:
            events.append(BoundaryEvent(Boundary.UTTERANCE_ENDED, end_sample, frame))
            self.reset()
