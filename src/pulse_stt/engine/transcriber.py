"""One decoding pass of Whisper (faster-whisper / CTranslate2) over one utterance.

Sessions hand us utterances of at most one model window (30 s), already gated by VAD,
so a pass is: features → one encoder run → language choice from that same encoder
output → decode with temperature fallback → word alignment. Going through
`WhisperModel.transcribe` instead would encode twice for language detection and, with
word timings on, re-decode the tail after the last word (where Whisper invents "you.").
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import TranscriptionOptions

from pulse_stt.engine.types import DecodeJob, Hypothesis, Word

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
WINDOW_SAMPLES = 30 * SAMPLE_RATE
_FINAL_PADDING = WINDOW_SAMPLES
_PARTIAL_PADDING = SAMPLE_RATE
_MIN_DECODE_SAMPLES = SAMPLE_RATE // 10  # under 100 ms there is no word to find
# Whisper's own hallucination guards.
_NO_SPEECH_THRESHOLD = 0.6
_LOG_PROB_THRESHOLD = -1.0
_COMPRESSION_RATIO_THRESHOLD = 2.4

_BASE_OPTIONS = TranscriptionOptions(
    beam_size=5,
    best_of=5,
    patience=1.0,
    length_penalty=1.0,
    repetition_penalty=1.0,
    no_repeat_ngram_size=0,
    log_prob_threshold=_LOG_PROB_THRESHOLD,
    no_speech_threshold=_NO_SPEECH_THRESHOLD,
    compression_ratio_threshold=_COMPRESSION_RATIO_THRESHOLD,
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
_PRO_OPTIONS = replace(_BASE_OPTIONS, patience=2.0, temperatures=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])


class WhisperTranscriber:
    """Owns the model. Not thread-safe by contract: the scheduler calls it from one thread."""

    def __init__(
        self, model_dir: Path, *, device: str, compute_type: str, cpu_threads: int
    ) -> None:
        self.model = WhisperModel(
            str(model_dir),
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=1,
        )
        self.multilingual = self.model.model.is_multilingual

    def decode(self, job: DecodeJob) -> Hypothesis:
        audio = np.ascontiguousarray(job.audio[:WINDOW_SAMPLES], dtype=np.float32)
        if audio.size < _MIN_DECODE_SAMPLES:
            return Hypothesis("", language=job.language)
        model = self.model
        extractor = model.feature_extractor
        num_frames = min(audio.size // extractor.hop_length, extractor.nb_max_frames)
        # Pad with silence in the audio domain, as Whisper was trained (a full 30 s window
        # for finals, like offline faster-whisper; 1 s for partials, whose encoder input is
        # only as long as their audio: its cost grows with length, ~6x less for 3 s).
        padding = _FINAL_PADDING if job.is_final else _PARTIAL_PADDING
        features = extractor(audio, padding=padding)[:, : extractor.nb_max_frames]
        encoder_output = model.encode(np.ascontiguousarray(features))
        language, candidates = self._choose_language(job, encoder_output)
        tokenizer = Tokenizer(
            model.hf_tokenizer, self.multilingual, task="transcribe", language=language
        )
        options = _options_for(job)
        if not job.is_final:
            # Short inputs can loop: cap the tokens by the audio's length (speech runs at
            # about 3-4 tokens a second; 8 leaves room for fast talkers and punctuation).
            cap = 8 + int(8 * audio.size / SAMPLE_RATE)
            options = replace(options, max_new_tokens=min(cap, model.max_length // 2))
        previous = tokenizer.encode(" " + job.prompt.strip()) if job.prompt else []
        prompt = model.get_prompt(
            tokenizer, previous_tokens=previous, without_timestamps=True, hotwords=job.hotwords
        )
        result, avg_logprob, _temperature, compression = model.generate_with_fallback(
            encoder_output, prompt, tokenizer, options
        )
        tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
        silent = result.no_speech_prob > _NO_SPEECH_THRESHOLD and avg_logprob < _LOG_PROB_THRESHOLD
        if silent or compression > _COMPRESSION_RATIO_THRESHOLD or not tokens:
            return Hypothesis("", language=language, language_candidates=candidates)
        text = tokenizer.decode(tokens).strip()
        words: tuple[Word, ...] = ()
        if job.word_timestamps:
            words = self._align(tokens, tokenizer, encoder_output, num_frames, audio.size)
        return Hypothesis(text, words, language, candidates)

    def _align(
        self,
        tokens: list[int],
        tokenizer: Tokenizer,
        encoder_output: object,
        num_frames: int,
        n: int,
    ) -> tuple[Word, ...]:
        segment = [{"seek": 0, "start": 0.0, "end": n / SAMPLE_RATE, "tokens": tokens}]
        self.model.add_word_timestamps(
            [segment],
            tokenizer,
            encoder_output,
            num_frames,
            _BASE_OPTIONS.prepend_punctuations,
            _BASE_OPTIONS.append_punctuations,
            last_speech_timestamp=0.0,
        )
        duration = n / SAMPLE_RATE
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
        self, job: DecodeJob, encoder_output: object
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
    if job.pro:
        return _PRO_OPTIONS
    return _FINAL_OPTIONS if job.is_final else _PARTIAL_OPTIONS
