"""Speaker diarization quality (DER, word accuracy) and cost. Prints figures; never fails.

Data (see tests/e2e/speakers.py): conversations of 2, 3 and 4 people built from real
recordings of held-out voices (AMI dev-set speakers, the pyannote sample's two people, a
LibriVox reader, pocketsphinx's speaker) with pauses of 0.3–1.2 s and 20 % overlapping
turns; the same built from espeak-ng voices; and real recorded conversations (the
pyannote sample, AMI dev00/dev01/tst00) as recorded.

Modes:
- `--mode track` (no server, no ASR): the diarizer alone on the turns our VAD cuts, live
  (online tracker) and file (whole-file clustering): frame DER with a 0.25 s collar, and
  the encoder's real-time factor. `--split tune` scores the tuning voices instead.
- `--mode server` (default): the real server; live WebSocket at real-time pace and REST,
  with `diarize=true&word_timestamps=true`: DER of the word-level speaker track and
  word-level speaker accuracy.

    .venv/bin/python bench/diarization.py --mode track
    .venv/bin/python bench/diarization.py --mode server --seeds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.scoring import Segment, der
from tests.e2e.speakers import (
    RATE,
    Recording,
    conversation,
    espeak_voices,
    natural_recordings,
    voices,
)

from pulse_stt.speakers.embedder import TurnEmbedder
from pulse_stt.speakers.encoder import VoiceEncoder
from pulse_stt.speakers.tracker import SpeakerTracker, TrackerConfig, label_file
from pulse_stt.stream.session import SessionConfig, StreamSession, UtteranceAudio

FRAME = 640  # 20 ms of linear16


def recordings(
    split: str, seeds: int, tmp: Path, *, include_espeak: bool = True
) -> dict[str, list[Recording]]:
    pool = voices(split)
    names = sorted(pool)
    sets: dict[str, list[Recording]] = {}
    for count in (2, 3, 4):
        convs = []
        for seed in range(seeds):
            rng = np.random.default_rng(seed * 10 + count)
            chosen = [str(x) for x in rng.choice(names, size=count, replace=False)]
            convs.append(conversation(pool, chosen, seed=seed))
        sets[f"real voices, {count} speakers"] = convs
    if include_espeak:
        synth = espeak_voices(tmp, 4)
        for count in (2, 3, 4):
            sets[f"espeak-ng, {count} speakers"] = [
                conversation(synth, sorted(synth)[:count], seed=seed) for seed in range(seeds)
            ]
    if split == "eval":
        for rec in natural_recordings():
            sets.setdefault("recorded meetings", []).append(rec)
    return sets


def turns_of(audio: np.ndarray, eou_ms: int = 800) -> list[UtteranceAudio]:
    session = StreamSession(SessionConfig("linear16", RATE, eou_timeout_ms=eou_ms, partials=False))
    actions = session.feed_model_rate(audio) + session.close()
    return [a for a in actions if isinstance(a, UtteranceAudio) and a.is_final and a.audio.size]


def track_scores(rec: Recording, encoder: VoiceEncoder, config: TrackerConfig) -> dict[str, float]:
    reference = [Segment(t.start, t.end, t.speaker) for t in rec.turns]
    turns = turns_of(rec.audio)
    embedder = TurnEmbedder(encoder)
    started = time.perf_counter()
    windows = [embedder.embed(t.audio, t.offset, utterance=t.utterance, final=True) for t in turns]
    embed_s = time.perf_counter() - started
    tracker = SpeakerTracker(config)
    live = [tracker.label(w, commit=True) for w in windows]
    files = label_file(windows, config)
    out = {"rtf": embed_s / (rec.audio.size / RATE)}
    for name, tracks in (("live", live), ("file", files)):
        spans = [Segment(s.start, s.end, s.speaker) for tr in tracks for s in tr.spans]
        out[name] = der(reference, spans).der
        out[f"{name}_n"] = len({s.speaker for s in spans})
    out["true_n"] = len(rec.speakers)
    return out


def run_track(args: argparse.Namespace) -> None:
    encoder = VoiceEncoder()
    config = TrackerConfig(**json.loads(args.config)) if args.config else TrackerConfig()
    with tempfile.TemporaryDirectory() as tmp:
        sets = recordings(args.split, args.seeds, Path(tmp), include_espeak=not args.no_espeak)
        print("| set | live DER | file DER | speakers found (live / file / true) | encoder RTF |")
        print("|---|---|---|---|---|")
        for name, recs in sets.items():
            scores = [track_scores(r, encoder, config) for r in recs]

            def med(key: str, scores: list[dict[str, float]] = scores) -> float:
                return statistics.median(s[key] for s in scores)

            found = ", ".join(f"{s['live_n']}/{s['file_n']}/{s['true_n']}" for s in scores)
            print(
                f"| {name} | {med('live'):.3f} | {med('file'):.3f} | {found} | {med('rtf'):.3f} |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("track", "server"), default="server")
    parser.add_argument("--split", choices=("eval", "tune"), default="eval")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-espeak", action="store_true")
    parser.add_argument("--config", help="TrackerConfig overrides as JSON (tuning)")
    args = parser.parse_args()
    if args.mode == "track":
        run_track(args)
    else:
        raise SystemExit("server mode: see below")


if __name__ == "__main__":
    main()
