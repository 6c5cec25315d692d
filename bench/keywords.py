"""Keyword boosting: recall of rare terms with and without `keywords`, and false insertions.

Synthesises the phrases of tests/fixtures/keywords.json with espeak-ng, decodes them with
the real engine and text pipeline at several intensifiers, and decodes the LibriVox clips
(which contain none of the keywords) to count insertions. Prints figures; never fails.

    .venv/bin/python bench/keywords.py
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.audio import espeak, librivox_clips, wer

from pulse_stt.api.params import parse_keywords, parse_text_options
from pulse_stt.config import Settings
from pulse_stt.engine.model_store import resolve_model_dir
from pulse_stt.engine.transcriber import WhisperTranscriber
from pulse_stt.engine.types import DecodeJob
from pulse_stt.protocol import JobKind
from pulse_stt.text.keywords import hotwords_prompt
from pulse_stt.text.pipeline import TranscriptShaper

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "keywords.json"


def main() -> None:
    fixture = json.loads(FIXTURE.read_text())
    keywords, sentences = fixture["keywords"], fixture["sentences"]
    tmp = Path(tempfile.mkdtemp())
    phrases = [espeak(s, tmp) for s in sentences]
    clips = librivox_clips()
    model = WhisperTranscriber(
        resolve_model_dir("base", Settings().cache_dir),
        device="cpu",
        compute_type="int8",
        cpu_threads=0,
    )
    options = parse_text_options({}, word_timestamps_default=True)
    total = sum(1 for s in sentences for k in keywords if k in s)
    print(
        f"{len(sentences)} espeak-ng phrases, {total} keyword occurrences; "
        f"{len(clips)} LibriVox clips without keywords"
    )
    print(
        f"{'intensifier':>11} {'recall':>8} {'phrase WER':>11} {'insertions':>11}"
        f" {'LibriVox WER':>13}"
    )
    for intensifier in (0, 1, 3, 6, 10, 20):
        boosted = parse_keywords(",".join(f"{k}:{intensifier}" for k in keywords))
        shaper = TranscriptShaper(options, itn=None, keywords=boosted)
        prompt = hotwords_prompt(boosted)

        def decode(audio, shaper=shaper, prompt=prompt) -> str:
            hyp = model.decode(
                DecodeJob(
                    "bench", audio, JobKind.FINAL, "en", hotwords=prompt, word_timestamps=True
                )
            )
            return shaper.shape(hyp, 0.0, final=True).text

        texts = [decode(a) for a in phrases]
        hits = sum(
            1 for s, t in zip(sentences, texts, strict=True) for k in keywords if k in s and k in t
        )
        clean = " ".join(decode(c.audio) for c in clips)
        inserted = sum(clean.count(k) for k in keywords)
        phrase_wer = wer(" ".join(sentences), " ".join(texts))
        clean_wer = wer(" ".join(c.text for c in clips), clean)
        print(
            f"{intensifier:>11} {hits:>5}/{total:<2} {phrase_wer:>11.3f}"
            f" {inserted:>11} {clean_wer:>13.3f}"
        )


if __name__ == "__main__":
    main()
