"""Speaker diarization quality (DER, word accuracy) and cost. Prints figures; never fails.

Data (see tests/support/speakers.py): conversations of 2, 3 and 4 people built from real
recordings of held-out voices (AMI dev-set speakers, the pyannote sample's two people, a
LibriVox reader, pocketsphinx's speaker) with pauses of 0.3–1.2 s and 20 % overlapping
turns; the same built from espeak-ng voices; each voice alone (must stay one speaker); and
real recorded conversations (the pyannote sample call, AMI dev00/dev01/tst00) as
recorded. Word-level speaker error (the share of words given to the wrong person) is
summed up for recorded and built conversations separately.

Modes:
- `--mode track` (no server, no ASR): the diarizer alone on the turns our VAD cuts, live
  (online tracker) and file (whole-file clustering): frame DER with a 0.25 s collar, a
  word-level speaker error from 0.4 s pieces of the labelled turns, and the encoder's
  real-time factor. `--split tune` scores the tuning voices and AMI training excerpts.
- `--mode server` (default): the real server; live WebSocket at real-time pace and REST,
  with `diarize=true&word_timestamps=true`: DER of the word-level speaker track and
  word-level speaker accuracy.

    .venv/bin/python bench/diarization.py --mode track
    .venv/bin/python bench/diarization.py --mode server --seeds 2
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import tempfile
import time
import wave
from contextlib import nullcontext
from pathlib import Path

import httpx
import numpy as np
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.audio import pcm16
from tests.support.scoring import Segment, der, word_accuracy
from tests.support.server import running_server
from tests.support.speakers import (
    RATE,
    Recording,
    conversation,
    espeak_voices,
    natural_recordings,
    one_voice,
    voices,
)

from pulse_stt.speakers.embedder import TurnEmbedder
from pulse_stt.speakers.encoder import TurnWindows, VoiceEncoder
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
    sets["one voice alone"] = [one_voice(pool, name) for name in names]
    if split == "eval":
        natural = natural_recordings("eval")
        sets[RECORDED_CALL] = natural[:1]
        sets["recorded meetings (AMI dev00, dev01, tst00)"] = natural[1:]
    else:
        sets["recorded meetings (AMI train excerpts)"] = natural_recordings("tune")
    return sets


RECORDED_CALL = "recorded call (pyannote sample, 2 people)"


def is_recorded(name: str) -> bool:
    return name.startswith("recorded")


def pseudo_words(spans: list[Segment], step: float = 0.4) -> list[Segment]:
    """Labelled speech cut into 0.4 s pieces: word-level scoring without ASR."""
    words = []
    for span in spans:
        t = span.start
        while t + step / 2 < span.end:
            words.append(Segment(t, min(t + step, span.end), span.speaker))
            t += step
    return words


def print_summary(errors: dict[str, list[tuple[str, float]]], what: str) -> None:
    """Mean word-level speaker error (share of words given to the wrong person) of real
    recordings and of built conversations, separately; each recorded one by name."""
    for kind, match in (("recorded", True), ("built", False)):
        values = [e for name, errs in errors.items() if is_recorded(name) == match for e in errs]
        if values:
            each = ""
            if match:
                each = " (" + ", ".join(f"{rec} {e:.3f}" for rec, e in values) + ")"
            print(
                f"{what}, {kind} ({'as recorded' if match else 'conversations built from clips'})"
                f": mean word-level speaker error {statistics.mean(e for _, e in values):.3f}"
                f" over {len(values)} recordings{each}"
            )


def turns_of(audio: np.ndarray, eou_ms: int = 800) -> list[UtteranceAudio]:
    session = StreamSession(SessionConfig("linear16", RATE, eou_timeout_ms=eou_ms, partials=False))
    actions = session.feed_model_rate(audio) + session.close()
    return [a for a in actions if isinstance(a, UtteranceAudio) and a.is_final and a.audio.size]


def track_scores(rec: Recording, encoder: VoiceEncoder, config: TrackerConfig) -> dict[str, float]:
    reference = [Segment(t.start, t.end, t.speaker) for t in rec.turns]

    def embed(eou_ms: int) -> tuple[list[TurnWindows], float]:
        embedder = TurnEmbedder(encoder)
        turns = turns_of(rec.audio, eou_ms)
        started = time.perf_counter()
        windows = [
            embedder.embed(t.audio, t.offset, utterance=t.utterance, final=True) for t in turns
        ]
        return windows, time.perf_counter() - started

    # Live sessions cut turns at 800 ms of silence by default, REST files at 600 ms.
    live_windows, embed_s = embed(800)
    tracker = SpeakerTracker(config)
    live = [tracker.label(w, commit=True) for w in live_windows]
    files = label_file(embed(600)[0], config)
    out = {"rtf": embed_s / (rec.audio.size / RATE)}
    for name, tracks in (("live", live), ("file", files)):
        spans = [Segment(s.start, s.end, s.speaker) for tr in tracks for s in tr.spans]
        out[name] = der(reference, spans).der
        out[f"{name}_n"] = len({s.speaker for s in spans})
        out[f"{name}_err"] = 1 - word_accuracy(reference, pseudo_words(spans)) if spans else 1.0
    out["true_n"] = len(rec.speakers)
    return out


def run_track(args: argparse.Namespace) -> None:
    encoder = VoiceEncoder()
    config = TrackerConfig(**json.loads(args.config)) if args.config else TrackerConfig()
    with tempfile.TemporaryDirectory() as tmp:
        sets = recordings(args.split, args.seeds, Path(tmp), include_espeak=not args.no_espeak)
        sets = {k: v for k, v in sets.items() if not args.only or args.only in k}
        print(
            "| set | live DER | file DER | word error (live / file) "
            "| speakers found (live / file / true) | encoder RTF |"
        )
        print("|---|---|---|---|---|---|")
        errors: dict[str, dict[str, list[tuple[str, float]]]] = {"live": {}, "file": {}}
        for name, recs in sets.items():
            scores = [track_scores(r, encoder, config) for r in recs]

            def med(key: str, scores: list[dict[str, float]] = scores) -> float:
                return statistics.median(s[key] for s in scores)

            for path in errors:
                errors[path][name] = [
                    (r.name, s[f"{path}_err"]) for r, s in zip(recs, scores, strict=True)
                ]
            found = ", ".join(f"{s['live_n']}/{s['file_n']}/{s['true_n']}" for s in scores)
            print(
                f"| {name} | {med('live'):.3f} | {med('file'):.3f} "
                f"| {med('live_err'):.3f} / {med('file_err'):.3f} | {found} | {med('rtf'):.3f} |",
                flush=True,
            )
        print("word error: 0.4 s pieces of the labelled turns, scored as words (medians above)")
        for path, errs in errors.items():
            print_summary(errs, path)


def _word_segments(words: list[dict]) -> list[Segment]:
    """Words → speaker segments (consecutive words of one speaker, gaps under 0.5 s)."""
    segments: list[Segment] = []
    for w in words:
        last = segments[-1] if segments else None
        if last and last.speaker == w["speaker"] and w["start"] - last.end < 0.5:
            segments[-1] = Segment(last.start, w["end"], last.speaker)
        else:
            segments.append(Segment(w["start"], w["end"], w["speaker"]))
    return segments


async def _stream_live(url: str, key: str, audio: np.ndarray, speed: float) -> list[dict]:
    query = "model=pulse&encoding=linear16&sample_rate=16000&word_timestamps=true&diarize=true"
    pcm = pcm16(np.concatenate([audio, np.zeros(2 * RATE, np.float32)]))
    words: list[dict] = []
    async with websockets.connect(
        f"{url}/waves/v1/stt/live?{query}",
        additional_headers={"Authorization": f"Bearer {key}"},
        max_size=None,
    ) as ws:

        async def send() -> None:
            start = time.monotonic()
            for i in range(0, len(pcm), FRAME):
                await ws.send(pcm[i : i + FRAME])
                ahead = (i + FRAME) / (2 * RATE) / speed - (time.monotonic() - start)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            await ws.send(json.dumps({"type": "close_stream"}))

        sender = asyncio.create_task(send())
        async for raw in ws:
            message = json.loads(raw)
            if message.get("type") == "transcription" and message["is_final"]:
                words += message.get("words", [])
        await sender
    return words


def _rest(url: str, key: str, audio: np.ndarray, *, diarize: bool) -> tuple[list[dict], float]:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm16(audio))
    started = time.perf_counter()
    response = httpx.post(
        f"{url}/waves/v1/stt/?model=pulse&word_timestamps=true&diarize={str(diarize).lower()}",
        content=buffer.getvalue(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "audio/wav"},
        timeout=600,
    )
    response.raise_for_status()
    return response.json().get("words", []), time.perf_counter() - started


def _scores(rec: Recording, words: list[dict]) -> tuple[float, float, int, float]:
    """Word accuracy, DER, speakers found, and the confusion part of DER."""
    reference = [Segment(t.start, t.end, t.speaker) for t in rec.turns]
    labelled = [w for w in words if "speaker" in w]
    hyp = [Segment(w["start"], w["end"], w["speaker"]) for w in labelled]
    result = der(reference, _word_segments(labelled))
    return (
        word_accuracy(reference, hyp),
        result.der,
        len({w["speaker"] for w in labelled}),
        result.confusion,
    )


def run_server(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        context = nullcontext(None) if args.url else running_server(Path(tmp) / "server")
        (Path(tmp) / "server").mkdir()
        with context as server:
            url = args.url or server.http
            key = args.key or server.key
            ws_url = url.replace("http", "ws", 1)
            sets = recordings("eval", args.seeds, Path(tmp), include_espeak=not args.no_espeak)
            sets = {k: v for k, v in sets.items() if not args.only or args.only in k}
            print(f"live at {args.speed}x real time, 20 ms frames; REST = POST of a WAV file")
            print(
                "| set | live word accuracy | live DER (confusion) | REST word accuracy "
                "| REST DER (confusion) | speakers found (live / REST / true) |"
            )
            print("|---|---|---|---|---|---|")
            timings: list[float] = []
            errors: dict[str, dict[str, list[tuple[str, float]]]] = {"live": {}, "REST": {}}
            for name, recs in sets.items():
                rows = []
                for rec in recs:
                    live = asyncio.run(_stream_live(ws_url, key, rec.audio, args.speed))
                    rest, with_s = _rest(url, key, rec.audio, diarize=True)
                    if len(timings) < 6:
                        _, without_s = _rest(url, key, rec.audio, diarize=False)
                        timings.append(with_s / without_s)
                    rows.append((_scores(rec, live), _scores(rec, rest), len(rec.speakers)))
                names = [rec.name for rec in recs]
                errors["live"][name] = [(n, 1 - r[0][0]) for n, r in zip(names, rows, strict=True)]
                errors["REST"][name] = [(n, 1 - r[1][0]) for n, r in zip(names, rows, strict=True)]
                live_m = [statistics.median(r[0][j] for r in rows) for j in range(4)]
                rest_m = [statistics.median(r[1][j] for r in rows) for j in range(4)]
                found = ", ".join(f"{r[0][2]}/{r[1][2]}/{r[2]}" for r in rows)
                print(
                    f"| {name} | {live_m[0]:.3f} | {live_m[1]:.3f} ({live_m[3]:.3f}) "
                    f"| {rest_m[0]:.3f} | {rest_m[1]:.3f} ({rest_m[3]:.3f}) | {found} |",
                    flush=True,
                )
            print(
                f"REST time with diarize=true / without: median {statistics.median(timings):.2f}"
                f" over {len(timings)} files"
            )
            for path, errs in errors.items():
                print_summary(errs, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("track", "server"), default="server")
    parser.add_argument("--split", choices=("eval", "tune"), default="eval")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--no-espeak", action="store_true")
    parser.add_argument("--config", help="TrackerConfig overrides as JSON (tuning)")
    parser.add_argument("--only", help="only the sets whose name contains this")
    parser.add_argument("--speed", type=float, default=2.0, help="live pace × real time")
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--key", help="its API key")
    args = parser.parse_args()
    if args.mode == "track":
        run_track(args)
    else:
        run_server(args)


if __name__ == "__main__":
    main()
