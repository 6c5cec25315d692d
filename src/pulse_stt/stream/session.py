"""One streaming session: audio in, endpointing, and the utterances to decode.

The session is synchronous and owns all of its state; the WebSocket layer calls it off the
event loop and turns its actions into engine jobs and wire messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from pulse_stt.audio.decode import AudioDecodeError, make_decoder
from pulse_stt.audio.resample import StreamResampler
from pulse_stt.protocol import MODEL_RATE, FinalReason, JobKind
from pulse_stt.stream.buffer import SampleBuffer
from pulse_stt.stream.endpointer import Boundary, Endpointer, EndpointerConfig
from pulse_stt.stream.vad import FRAME_SAMPLES, StreamingVad

_PREROLL = int(0.3 * MODEL_RATE)  # audio kept before a speech onset (soft consonants)
_TAIL = int(0.2 * MODEL_RATE)  # audio kept after the last speech frame of a turn
_MIN_PARTIAL = int(0.3 * MODEL_RATE)
# Silence after speech that starts a speculative final (see `UtteranceAudio.speculative`).
_SPECULATE_FRAMES = 5  # 160 ms


@dataclass(frozen=True)
class SessionConfig:
    encoding: str
    sample_rate: int
    eou_timeout_ms: int = 800  # the silence that ends a turn (see StreamParams.turn_end_ms)
    vad_threshold: float = 0.5
    vad_min_speech_ms: int = 96
    partial_interval_ms: int = 500
    max_utterance_s: float = 25.0
    partials: bool = True  # whole-file segmentation wants finals only


@dataclass(frozen=True)
class VadNotice:
    """A turn's speech onset, or its end: `speech_ended` comes right after the final that
    ends the turn (by silence or finalize), never at a pause inside it."""

    kind: Literal["speech_started", "speech_ended"]
    timestamp: float  # seconds since the first audio byte


@dataclass(frozen=True)
class UtteranceAudio:
    """Audio of one turn (or of the turn so far, for a partial) to decode."""

    utterance: int  # sequence number of the turn within the session
    offset: float  # seconds since the first audio byte of audio[0]
    audio: np.ndarray
    # PARTIAL or FINAL; or SPECULATIVE: a pause-time pass with final quality over the turn
    # so far, shown as a partial; if the turn then ends with no more speech, its final
    # reuses that pass instead of waiting for a new one (`reuses_speculation`). Trailing
    # silence changes nothing: every pass pads its audio with silence anyway.
    kind: JobKind
    reason: FinalReason | None = None  # with FINAL: what ended the turn
    reuses_speculation: bool = False

    @property
    def is_final(self) -> bool:
        return self.kind is JobKind.FINAL

    @property
    def speculative(self) -> bool:
        return self.kind is JobKind.SPECULATIVE

    @property
    def from_finalize(self) -> bool:
        return self.reason is FinalReason.FINALIZE

    @property
    def is_last(self) -> bool:
        return self.reason is FinalReason.CLOSE


@dataclass(frozen=True)
class AudioProblem:
    """Audio that could not be decoded at the end of the stream (reported, not fatal)."""

    message: str


SessionAction = VadNotice | UtteranceAudio | AudioProblem


class StreamSession:
    def __init__(self, config: SessionConfig) -> None:
        self._config = config
        self._decoder = make_decoder(config.encoding, config.sample_rate)
        self._resampler = StreamResampler(self._decoder.output_rate)
        self._vad = StreamingVad()
        self._endpointer = Endpointer(
            EndpointerConfig(
                eou_timeout_ms=config.eou_timeout_ms,
                threshold=config.vad_threshold,
                min_speech_ms=config.vad_min_speech_ms,
            )
        )
        self._buffer = SampleBuffer()
        self._frames_done = 0  # VAD frames judged so far
        self._probs: list[float] = []  # per-frame speech probability since `_probs_first`
        self._probs_first = 0
        self._utterance = 0
        self._utt_start: int | None = None  # absolute sample where the open turn's audio starts
        self._min_next_start = 0  # a new turn never re-reads audio an earlier final covered
        self._last_partial_end = 0
        self._partial_speech_frame = -1  # the endpointer's last speech frame at that partial
        self._speculated_speech_end: int | None = None  # speech end of the turn's speculation
        self._partial_step = int(config.partial_interval_ms * MODEL_RATE / 1000)
        self._max_len = int(config.max_utterance_s * MODEL_RATE)
        self.input_samples = 0  # decoded samples at the decoder's rate, for usage
        self.closed = False

    @property
    def audio_seconds(self) -> float:
        return self.input_samples / self._decoder.output_rate

    @property
    def current_utterance(self) -> int:
        return self._utterance

    @property
    def has_pending_audio(self) -> bool:
        """The decoder holds input that `feed(b"")` turns into more audio: one frame of a
        compressed encoding can hold hours, so it is decoded a bounded piece per call."""
        return self._decoder.has_backlog

    def feed(self, data: bytes) -> list[SessionAction]:
        """A binary frame from the client (b"": the next piece of the pending audio).
        Raises AudioDecodeError on undecodable bytes."""
        samples = self._decoder.decode(data)
        self.input_samples += samples.size
        return self._ingest(self._resampler.process(samples), partial_allowed=self._config.partials)

    def feed_model_rate(self, samples: np.ndarray) -> list[SessionAction]:
        """Audio already decoded to float32 at the model rate (whole files)."""
        return self._ingest(samples, partial_allowed=self._config.partials)

    def finalize(self) -> list[SessionAction]:
        """Client's turn boundary: exactly one final for whatever is buffered (maybe empty),
        then `speech_ended` if the turn's speech had started (the next speech is a new turn)."""
        ended = self._speech_end() if self._endpointer.in_utterance else None
        actions: list[SessionAction] = [self._close_turn(FinalReason.FINALIZE)]
        if ended is not None:
            actions.append(VadNotice("speech_ended", round(ended / MODEL_RATE, 3)))
        return actions

    def force_final(
        self, reason: FinalReason, utterance: int | None = None, at_s: float | None = None
    ) -> list[SessionAction]:
        """Server-side cut (e.g. word count) of the open turn, if any (and if still `utterance`):
        a final of the audio so far, or up to `at_s` (seconds since the first audio byte:
        a word boundary) when that lies inside the turn's audio; the speech goes on in the
        same (VAD) turn."""
        if self._utt_start is None or self.closed:
            return []
        if utterance is not None and utterance != self._utterance:
            return []
        end = None
        if at_s is not None:
            at = round(at_s * MODEL_RATE)
            if self._utt_start < at < self._buffer.end:
                end = at
        return [self._close_turn(reason, end=end, keep_open=True)]

    def close(self) -> list[SessionAction]:
        """End of stream: flush every stage, then the terminal final (is_last)."""
        self.closed = True
        actions: list[SessionAction] = []
        try:
            tail = self._decoder.flush()
        except AudioDecodeError as exc:
            actions.append(AudioProblem(str(exc)))
            tail = np.zeros(0, dtype=np.float32)
        self.input_samples += tail.size
        actions += self._ingest(self._resampler.process(tail), partial_allowed=False)
        actions += self._ingest(self._resampler.flush(), partial_allowed=False)
        self._flush_vad(actions)
        actions.append(self._close_turn(FinalReason.CLOSE))
        return actions

    # -- internals ---------------------------------------------------------------------

    def _flush_vad(self, actions: list[SessionAction]) -> None:
        probs = self._vad.flush()
        if probs.size:
            self._on_probs(probs, actions)

    def _ingest(self, pcm: np.ndarray, *, partial_allowed: bool) -> list[SessionAction]:
        actions: list[SessionAction] = []
        self._buffer.append(pcm)
        probs = self._vad.process(pcm)
        if probs.size:
            self._on_probs(probs, actions)
        if self._utt_start is None:
            keep_from = max(self._min_next_start, self._frames_done * FRAME_SAMPLES - 2 * _PREROLL)
            self._buffer.drop_before(keep_from)
            self._drop_probs_before(keep_from // FRAME_SAMPLES)
        elif partial_allowed:
            end = self._buffer.end
            if (
                end - self._last_partial_end >= self._partial_step
                and end - self._utt_start >= _MIN_PARTIAL
                # Silence since the last partial adds no words: no pass for it.
                and self._endpointer.last_speech_frame > self._partial_speech_frame
            ):
                self._last_partial_end = end
                self._partial_speech_frame = self._endpointer.last_speech_frame
                actions.append(self._turn_so_far(self._utt_start, end))
        return actions

    def _turn_so_far(self, start: int, end: int, *, speculative: bool = False) -> UtteranceAudio:
        """The open turn's audio [start, end), for a partial (or speculative) pass."""
        return UtteranceAudio(
            self._utterance,
            start / MODEL_RATE,
            self._buffer.slice(start, end),
            JobKind.SPECULATIVE if speculative else JobKind.PARTIAL,
        )

    def _on_probs(self, probs: np.ndarray, actions: list[SessionAction]) -> None:
        first = self._frames_done
        self._frames_done += probs.size
        self._probs.extend(probs.tolist())
        for event in self._endpointer.push(first, probs.tolist()):
            # A long turn is cut before any later event of the same batch of frames.
            self._split_long_turn(actions, judged_end=(event.frame + 1) * FRAME_SAMPLES)
            if event.kind is Boundary.SPEECH_STARTED:
                if self._utt_start is None:
                    self._utt_start = max(
                        self._min_next_start, self._buffer.start, event.sample - _PREROLL
                    )
                    self._last_partial_end = self._utt_start
                    self._partial_speech_frame = -1
                    self._speculated_speech_end = None
                actions.append(VadNotice("speech_started", round(event.sample / MODEL_RATE, 3)))
            elif event.kind is Boundary.UTTERANCE_ENDED:
                if self._utt_start is not None:
                    end = min(event.sample + _TAIL, (event.frame + 1) * FRAME_SAMPLES)
                    actions.append(
                        self._close_turn(FinalReason.EOU, end=end, speech_end=event.sample)
                    )
                # After the turn's final: a client closing the turn on it sees no more text.
                actions.append(VadNotice("speech_ended", round(event.sample / MODEL_RATE, 3)))
        self._split_long_turn(actions, judged_end=self._frames_done * FRAME_SAMPLES)
        self._maybe_speculate(actions)

    def _speech_end(self) -> int | None:
        """Where the open turn's speech (as judged so far) ends, as an absolute sample."""
        last = self._endpointer.last_speech_frame
        return (last + 1) * FRAME_SAMPLES if last >= 0 else None

    def _maybe_speculate(self, actions: list[SessionAction]) -> None:
        if (
            not self._config.partials
            or self._utt_start is None
            or self._endpointer.silent_frames < _SPECULATE_FRAMES
        ):
            return
        speech_end = self._speech_end()
        if speech_end is None or speech_end == self._speculated_speech_end:
            return
        self._speculated_speech_end = speech_end
        end = min(speech_end + _TAIL, self._buffer.end)
        # The speculation decodes every word said so far: no plain partial until more
        # speech (one after it would replace it in the engine's queue, and the final that
        # was to reuse it would then decode the turn again).
        self._last_partial_end = end
        self._partial_speech_frame = self._endpointer.last_speech_frame
        actions.append(self._turn_so_far(self._utt_start, end, speculative=True))

    def _split_long_turn(self, actions: list[SessionAction], *, judged_end: int) -> None:
        """Cut a turn longer than the model window at its quietest frame; lose no audio."""
        while self._utt_start is not None and judged_end - self._utt_start > self._max_len:
            lo_frame = (self._utt_start + self._max_len // 2) // FRAME_SAMPLES
            hi_frame = (self._utt_start + self._max_len) // FRAME_SAMPLES
            window = np.asarray(
                self._probs[lo_frame - self._probs_first : hi_frame - self._probs_first]
            )
            if window.size == 0:
                cut = self._utt_start + self._max_len
            else:
                # Latest frame among the quietest (within 0.05 of the minimum).
                quiet = np.flatnonzero(window <= window.min() + 0.05)
                cut = (lo_frame + int(quiet[-1])) * FRAME_SAMPLES + FRAME_SAMPLES // 2
            actions.append(self._close_turn(FinalReason.MAX_LENGTH, end=cut, keep_open=True))

    def _close_turn(
        self,
        reason: FinalReason,
        *,
        end: int | None = None,
        keep_open: bool = False,
        speech_end: int | None = None,
    ) -> UtteranceAudio:
        start = self._utt_start
        end = self._buffer.end if end is None else end
        if start is None:
            audio = np.zeros(0, dtype=np.float32)
            offset = end / MODEL_RATE
        else:
            audio = self._buffer.slice(start, end)
            offset = start / MODEL_RATE
        if speech_end is None:
            speech_end = self._speech_end()
        # No speech since the speculation: that pass already decoded everything said.
        reuses = (
            start is not None
            and not keep_open
            and reason in (FinalReason.EOU, FinalReason.FINALIZE, FinalReason.CLOSE)
            and speech_end is not None
            and speech_end == self._speculated_speech_end
        )
        final = UtteranceAudio(
            self._utterance,
            offset,
            audio,
            JobKind.FINAL,
            reason=reason,
            reuses_speculation=reuses,
        )
        self._speculated_speech_end = None
        self._utterance += 1
        self._min_next_start = max(self._min_next_start, end)
        if keep_open:
            self._utt_start = end
            self._last_partial_end = end
            self._buffer.drop_before(end)
            self._drop_probs_before(end // FRAME_SAMPLES)
        else:
            self._utt_start = None
            if reason is not FinalReason.EOU:
                self._endpointer.reset()
        return final

    def _drop_probs_before(self, frame: int) -> None:
        cut = frame - self._probs_first
        if cut > 0:
            del self._probs[:cut]
            self._probs_first += cut
