"""Decoding passes of Whisper (faster-whisper / CTranslate2), one or several at a time.

Sessions hand us utterances of at most one model window (30 s), already gated by VAD.
A pass is: features → encoder → language choice from that same encoder output → decode
→ word alignment. Going through `WhisperModel.transcribe` instead would encode twice for
language detection and, with word timings on, re-decode the tail after the last word
(where Whisper invents "you.").

Two measured facts shape it (bench/engine_passes.py, 2-core CPU, Whisper base int8):

- Windows shorter than 30 s are much cheaper to encode (15 s: ~65 ms, 30 s: ~280 ms), but
  Whisper was trained on 30 s windows and loops or truncates on very short ones (audio +
  1-3 s of padding tripled WER). From a 15 s window up, WER equals the 30 s one. So every
  pass gets a window of at least `min_window_s`, in 5 s steps, and a final whose short
  pass shows a loop, a low log-probability or a hit token cap is redone on the full 30 s
  window exactly as offline faster-whisper decodes it. Both passes are judged by one
  guard (engine/guard.py), which drops silence, loops and empty output; the full-window
  pass by Whisper's own rules only, as offline decoding judges it.
- The decoder, not the encoder, dominates a pass (~10 ms a token greedy, ~15-20 ms with
  beam 5), and it batches well on CPU: 8 finals decode together in about twice the time
  of one. Encoding does not batch on CPU (it is compute-bound), so each job is encoded on
  its own and the encoder outputs of equal-window jobs are stacked for one `generate`.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import ctranslate2
import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import TranscriptionOptions

from pulse_stt.engine.guard import (
    COMPRESSION_RATIO_THRESHOLD,
    LOG_PROB_THRESHOLD,
    NO_SPEECH_THRESHOLD,
    Verdict,
    judge,
)
from pulse_stt.engine.types import DecodeJob, Hypothesis, Word
from pulse_stt.protocol import MODEL_RATE, JobKind

log = logging.getLogger(__name__)

WINDOW_SAMPLES = 30 * MODEL_RATE
_MIN_DECODE_SAMPLES = MODEL_RATE // 10  # under 100 ms there is no word to find

_BASE_OPTIONS = TranscriptionOptions(
    beam_size=5,
    best_of=5,
    patience=1.0,
    length_penalty=1.0,
    repetition_penalty=1.0,
    no_repeat_ngram_size=0,
    log_prob_threshold=LOG_PROB_THRESHOLD,
    no_speech_threshold=NO_SPEECH_THRESHOLD,
    compression_ratio_threshold=COMPRESSION_RATIO_THRESHOLD,
    condition_on_previous_text=False,
    prompt_reset_on_temperature=0.5,
    temperatures=[0.0, 0.2, 0.4, 0.6],
    initial_prompt=None,
    prefix=None,
    suppress_blank=True,
    suppress_tokens=[-1],
    without_timestamps=True,
    max_initial_timestamp=1.0,
    word_timestamps=False,
    prepend_punctuations="\"'“¿([{-",
    append_punctuations="\"'.。,，!！?？:：”)]}、",
    multilingual=False,
    max_new_tokens=None,
    clip_timestamps="0",
    hallucination_silence_threshold=None,
    hotwords=None,
)
_FINAL_OPTIONS = _BASE_OPTIONS
_PARTIAL_OPTIONS = replace(_BASE_OPTIONS, beam_size=1, temperatures=[0.0])


@dataclass(frozen=True)
class WindowPolicy:
    """How long an encoder window a pass gets (see the module docstring for why).

    Partials may take a shorter minimum than finals: they are greedy, capped, replaced
    within half a second, and the final decodes the turn again.
    """

    final_min_s: float = 15.0
    partial_min_s: float = 5.0
    step_s: float = 5.0
    padding_s: float = 1.0  # silence after the audio, at least

    def window_samples(self, audio_samples: int, *, final: bool) -> int:
        minimum = self.final_min_s if final else self.partial_min_s
        if minimum >= 30:
            return WINDOW_SAMPLES
        needed = audio_samples / MODEL_RATE + self.padding_s
        seconds = max(minimum, math.ceil(needed / self.step_s) * self.step_s)
        return min(WINDOW_SAMPLES, int(seconds * MODEL_RATE))


@dataclass
class StageTimes:
    """Where one kind of job's time went since the model was loaded (a benchmark figure,
    bench/engine_profile.py: read it before and after a run). `encode` includes features
    and language choice; `full_window` is the whole 30 s fallback pass (its encode counted
    in `encode` too)."""

    jobs: int = 0
    batches: int = 0  # batched `generate` calls
    audio_s: float = 0.0
    window_s: float = 0.0  # encoder input, padding included
    encode: float = 0.0
    decode: float = 0.0
    align: float = 0.0
    full_window: float = 0.0
    tokens: int = 0

    def minus(self, before: StageTimes) -> StageTimes:
        names = self.__dataclass_fields__
        return replace(self, **{n: getattr(self, n) - getattr(before, n) for n in names})


def _token_cap(audio_samples: int) -> int:
    """Speech runs at 3-4 tokens a second; 10 a second leaves room for fast talkers."""
    return 10 + int(10 * audio_samples / MODEL_RATE)


@dataclass
class _Prepared:
    """One job after its encoder pass, ready to join a batched decode."""

    job: DecodeJob
    audio: np.ndarray
    encoder_output: np.ndarray  # (1, frames, dims) float32
    language: str
    candidates: tuple[str, ...]
    tokenizer: Tokenizer
    previous: list[int]  # tokens of the text before this audio (job.prompt)
    cap: int | None  # token cap for short windows; None on the full window

    @property
    def num_frames(self) -> int:
        return min(self.audio.size // 160, 3000)


class WhisperTranscriber:
    """Owns the model. Safe to call from the scheduler's workers at once: a pass keeps no
    state between calls (CTranslate2 serves concurrent calls, one per `workers`). The one
    thing passes share is the `fallbacks` count, which a lock guards."""

    def __init__(
        self,
        model_dir: Path,
        *,
        device: str,
        compute_type: str,
        cpu_threads: int,
        workers: int = 1,
        windows: WindowPolicy | None = None,
    ) -> None:
        self.model = WhisperModel(
            str(model_dir),
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=workers,  # CTranslate2 runs up to this many calls at once
        )
        self.multilingual = self.model.model.is_multilingual
        self.windows = windows or WindowPolicy()
        self._fallbacks = 0
        self._fallbacks_lock = threading.Lock()
        self._times: dict[JobKind, StageTimes] = {}

    # -- public ------------------------------------------------------------------------

    @property
    def fallbacks(self) -> int:
        """Finals redone on the full window since the model was loaded (a benchmark figure:
        read it before and after a run)."""
        with self._fallbacks_lock:
            return self._fallbacks

    def stage_times(self) -> dict[JobKind, StageTimes]:
        """A copy of the running stage times, by job kind."""
        with self._fallbacks_lock:
            return {kind: replace(times) for kind, times in self._times.items()}

    def _add(self, kind: JobKind, **amounts: float) -> None:
        with self._fallbacks_lock:
            times = self._times.setdefault(kind, StageTimes())
            for name, amount in amounts.items():
                setattr(times, name, getattr(times, name) + amount)

    def batch_key(self, job: DecodeJob) -> tuple[object, ...]:
        """Jobs with equal keys can share one batched decode."""
        audio = min(job.audio.size, WINDOW_SAMPLES)
        return (
            job.is_final,
            job.batch,
            job.word_timestamps,
            self.windows.window_samples(audio, final=job.is_final),
            bool(job.prompt),  # prompts are cut to a common length in `_generate`
            job.hotwords,
        )

    def decode(self, job: DecodeJob) -> Hypothesis:
        result = self.decode_batch([job])[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def decode_batch(self, jobs: list[DecodeJob]) -> list[Hypothesis | BaseException]:
        """Decode jobs with equal `batch_key`s together; a failure is returned per job."""
        results: list[Hypothesis | BaseException | None] = [None] * len(jobs)
        prepared: list[tuple[int, _Prepared]] = []
        for i, job in enumerate(jobs):
            try:
                if job.full_window:  # a redo known to be owed (its speculation was bad)
                    results[i] = self._full_window(job)
                    continue
                ready = self._prepare(job)
            except Exception as exc:
                log.exception("decode pass failed for session %s", job.session_id)
                results[i] = exc
                continue
            if isinstance(ready, Hypothesis):
                results[i] = ready
            else:
                prepared.append((i, ready))
        # Callers batch by `batch_key`; grouping again by shape keeps odd batches correct.
        groups: dict[tuple[object, ...], list[tuple[int, _Prepared]]] = {}
        for i, item in prepared:
            shape = (item.encoder_output.shape, bool(item.previous), id(_options_for(item.job)))
            groups.setdefault(shape, []).append((i, item))
        for group in groups.values():
            decoded = self._decode_prepared([item for _, item in group])
            for (i, _), hyp in zip(group, decoded, strict=True):
                results[i] = hyp
        return [r if r is not None else Hypothesis("") for r in results]

    # -- passes ------------------------------------------------------------------------

    def _prepare(self, job: DecodeJob, *, full_window: bool = False) -> _Prepared | Hypothesis:
        audio = np.ascontiguousarray(job.audio[:WINDOW_SAMPLES], dtype=np.float32)
        if audio.size < _MIN_DECODE_SAMPLES:
            return Hypothesis("", language=job.language)
        started = time.perf_counter()
        model = self.model
        extractor = model.feature_extractor
        window = (
            WINDOW_SAMPLES
            if full_window
            else self.windows.window_samples(audio.size, final=job.is_final)
        )
        # Pad with silence in the audio domain, as Whisper was trained.
        features = extractor(audio, padding=window - audio.size)[:, : window // 160]
        encoded = model.model.encode(
            ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None])),
            to_cpu=True,
        )
        encoder_output = np.array(encoded)
        language, candidates = self._choose_language(job, encoded)
        tokenizer = Tokenizer(
            model.hf_tokenizer, self.multilingual, task="transcribe", language=language
        )
        previous = tokenizer.encode(" " + job.prompt.strip()) if job.prompt else []
        cap = None if window == WINDOW_SAMPLES and job.is_final else _token_cap(audio.size)
        self._add(
            job.kind,
            encode=time.perf_counter() - started,
            **({} if full_window else {"jobs": 1, "audio_s": audio.size / MODEL_RATE}),
            window_s=window / MODEL_RATE,
        )
        return _Prepared(job, audio, encoder_output, language, candidates, tokenizer, previous, cap)

    def _prompt(self, item: _Prepared, previous_tokens: int) -> list[int]:
        """The decoder prompt, with the last `previous_tokens` tokens of earlier text."""
        previous = item.previous[-previous_tokens:] if previous_tokens else []
        return self.model.get_prompt(
            item.tokenizer,
            previous_tokens=previous,
            without_timestamps=True,
            hotwords=item.job.hotwords,
        )

    def _decode_prepared(self, items: list[_Prepared]) -> list[Hypothesis | BaseException]:
        options = _options_for(items[0].job)
        try:
            results = self._generate(items, options)
        except Exception as exc:
            if len(items) == 1:
                log.exception("decode pass failed for session %s", items[0].job.session_id)
                return [exc]
            # One bad item must not sink the others: decode each on its own.
            return [self._decode_prepared([item])[0] for item in items]
        out: list[Hypothesis | BaseException] = []
        for item, result in zip(items, results, strict=True):
            try:
                out.append(self._accept(item, result, options))
            except Exception as exc:
                log.exception("decode pass failed for session %s", item.job.session_id)
                out.append(exc)
        return out

    def _generate(
        self, items: list[_Prepared], options: TranscriptionOptions
    ) -> list[ctranslate2.models.WhisperGenerationResult]:
        model = self.model
        # CTranslate2 wants <|startoftranscript|> at one position across a batch: every
        # prompt keeps as many tokens of earlier text as the shortest one has.
        common = min(len(i.previous) for i in items)
        prompts = [self._prompt(i, common) for i in items]
        caps = [len(p) + (i.cap or model.max_length) for p, i in zip(prompts, items, strict=True)]
        stacked = np.ascontiguousarray(np.concatenate([i.encoder_output for i in items]))
        started = time.perf_counter()
        results = model.model.generate(
            ctranslate2.StorageView.from_array(stacked),
            prompts,
            beam_size=options.beam_size,
            patience=options.patience,
            length_penalty=options.length_penalty,
            repetition_penalty=options.repetition_penalty,
            no_repeat_ngram_size=options.no_repeat_ngram_size,
            max_length=min(max(caps), model.max_length),
            return_scores=True,
            return_no_speech_prob=True,
            suppress_blank=options.suppress_blank,
            suppress_tokens=options.suppress_tokens,
            max_initial_timestamp_index=round(options.max_initial_timestamp / model.time_precision),
        )
        tokens = sum(len(r.sequences_ids[0]) for r in results)
        self._add(items[0].job.kind, decode=time.perf_counter() - started, batches=1, tokens=tokens)
        return results

    def _accept(
        self,
        item: _Prepared,
        result: ctranslate2.models.WhisperGenerationResult,
        options: TranscriptionOptions,
    ) -> Hypothesis:
        """The short-window pass's hypothesis, or the full-window one when the guard says a
        final must be redone."""
        tokenizer = item.tokenizer
        tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
        avg_logprob = result.scores[0] * len(tokens) ** options.length_penalty / (len(tokens) + 1)
        text = tokenizer.decode(tokens).strip()
        verdict = judge(
            text,
            tokens=len(tokens),
            avg_logprob=avg_logprob,
            no_speech_prob=result.no_speech_prob,
            token_cap=item.cap,
        )
        if item.job.speculative and verdict.redo_on_full_window:  # the turn may go on
            return replace(self._hypothesis(item, text, tokens, verdict), provisional=True)
        if item.job.is_final and verdict.redo_on_full_window:
            # Guarded fallback: redo this final exactly as offline faster-whisper would.
            with self._fallbacks_lock:
                self._fallbacks += 1
            return self._full_window(item.job)
        return self._hypothesis(item, text, tokens, verdict)

    def _full_window(self, job: DecodeJob) -> Hypothesis:
        """A single pass on the 30 s window with temperature fallback (offline decoding)."""
        started = time.perf_counter()
        item = self._prepare(job, full_window=True)
        if isinstance(item, Hypothesis):
            return item
        model = self.model
        options = _options_for(job)
        encoder_output = ctranslate2.StorageView.from_array(item.encoder_output)
        result, avg_logprob, _temperature, _compression = model.generate_with_fallback(
            encoder_output, self._prompt(item, len(item.previous)), item.tokenizer, options
        )
        tokens = [t for t in result.sequences_ids[0] if t < item.tokenizer.eot]
        self._add(job.kind, full_window=time.perf_counter() - started, tokens=len(tokens))
        text = item.tokenizer.decode(tokens).strip()
        verdict = judge(
            text,
            tokens=len(tokens),
            avg_logprob=avg_logprob,
            no_speech_prob=result.no_speech_prob,
            full_window=True,  # judged as offline Whisper judges it (see engine/guard.py)
        )
        return self._hypothesis(item, text, tokens, verdict)

    def _hypothesis(
        self, item: _Prepared, text: str, tokens: list[int], verdict: Verdict
    ) -> Hypothesis:
        """What a pass sends: nothing when the guard drops its text, else the text (with
        word timings when the job asked for them)."""
        if verdict.dropped:
            return Hypothesis("", language=item.language, language_candidates=item.candidates)
        started = time.perf_counter()
        words = self._align(item, tokens) if item.job.word_timestamps else ()
        self._add(item.job.kind, align=time.perf_counter() - started)
        return Hypothesis(text, words, item.language, item.candidates)

    def _align(self, item: _Prepared, tokens: list[int]) -> tuple[Word, ...]:
        n = item.audio.size
        segment: list[dict[str, Any]] = [
            {"seek": 0, "start": 0.0, "end": n / MODEL_RATE, "tokens": tokens}
        ]
        self.model.add_word_timestamps(
            [segment],
            item.tokenizer,
            ctranslate2.StorageView.from_array(item.encoder_output),
            item.num_frames,
            _BASE_OPTIONS.prepend_punctuations,
            _BASE_OPTIONS.append_punctuations,
            last_speech_timestamp=0.0,
        )
        duration = n / MODEL_RATE
        return tuple(
            Word(
                text=w["word"].strip(),
                start=round(min(float(w["start"]), duration), 3),
                end=round(min(float(w["end"]), duration), 3),
                probability=round(float(w["probability"]), 3),
            )
            for w in segment[0].get("words", ())
            if w["word"].strip()
        )

    def _choose_language(
        self, job: DecodeJob, encoder_output: ctranslate2.StorageView
    ) -> tuple[str, tuple[str, ...]]:
        if not self.multilingual:
            return "en", ("en",)
        if job.language:
            return job.language, (job.language,)
        results = self.model.model.detect_language(encoder_output)[0]
        allowed = set(job.candidates)
        ranked = [(tok[2:-2], p) for tok, p in results if tok[2:-2] in allowed]
        if not ranked:
            fallback = job.candidates[0] if job.candidates else "en"
            return fallback, (fallback,)
        top = tuple(lang for lang, p in ranked[:3] if p >= 0.05) or (ranked[0][0],)
        return ranked[0][0], top


def _options_for(job: DecodeJob) -> TranscriptionOptions:
    return _FINAL_OPTIONS if job.is_final else _PARTIAL_OPTIONS
