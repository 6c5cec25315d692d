"""Real multi-speaker audio with known speaker turns, for diarization tests and benchmarks.

Voices come from real recordings that ship in packages:

- pyannote.audio's source package on PyPI (`make test-fixtures` unpacks it): ten 30 s
  excerpts of AMI meetings (`trn*`, `dev*`, `tst*`) and a two-person sample, each with an
  RTTM file of who spoke when;
- Debian's pocketsphinx-testdata: a LibriVox reader and one speaker's command recordings.

`voices("tune")` holds AMI training-set speakers and is the only data used to choose the
diarizer's thresholds; `voices("eval")` holds other people (AMI dev set, the pyannote
sample, LibriVox, pocketsphinx) and is what figures are reported on. Conversations are
built from solo stretches (no other annotated speaker active) with pauses and overlaps.
"""

from __future__ import annotations

import os
import random
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from faster_whisper.audio import decode_audio

RATE = 16_000
FIXTURES = Path(os.environ.get("PULSE_STT_FIXTURES", Path.home() / ".cache/pulse-stt/fixtures"))
PYANNOTE = FIXTURES / "pyannote_audio-4.0.7"
POCKETSPHINX = Path("/usr/share/pocketsphinx/test/data")

_TUNE_AMI = ("FEE078", "FEE083", "MÉO069", "MEE068", "MEE075")
_EVAL_AMI = ("MEE009", "MEE012")


@dataclass(frozen=True)
class Turn:
    start: float
    end: float
    speaker: str


@dataclass(frozen=True)
class Recording:
    name: str
    audio: np.ndarray  # float32 mono 16 kHz
    turns: tuple[Turn, ...]  # reference: who speaks when (may overlap)

    @property
    def speakers(self) -> list[str]:
        return list(dict.fromkeys(t.speaker for t in self.turns))


def _require_fixtures() -> None:
    if not (PYANNOTE / ".extracted").exists():
        raise FileNotFoundError(
            f"{PYANNOTE} is missing: run `make test-fixtures` (unpacks pyannote.audio's sdist)"
        )


def _read_rttm(path: Path) -> dict[str, list[Turn]]:
    turns: dict[str, list[Turn]] = defaultdict(list)
    for line in path.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            turns[fields[1]].append(Turn(start, start + duration, fields[7]))
    return {uri: sorted(ts, key=lambda t: t.start) for uri, ts in turns.items()}


def _ami_annotations() -> dict[str, list[Turn]]:
    _require_fixtures()
    data = PYANNOTE / "tests/data"
    merged: dict[str, list[Turn]] = {}
    for split in ("train", "development", "test"):
        merged.update(_read_rttm(data / f"debug.{split}.rttm"))
    merged.update(_read_rttm(PYANNOTE / "src/pyannote/audio/sample/sample.rttm"))
    return merged


def _audio_of(uri: str) -> np.ndarray:
    if uri == "sample":
        path = PYANNOTE / "src/pyannote/audio/sample/sample.wav"
    else:
        # pyannote's test data spells one file "trñ00.wav" (a unicode-path test).
        candidates = [
            PYANNOTE / "tests/data" / f"{uri}.wav",
            PYANNOTE / "tests/data" / f"{uri.replace('n', 'ñ', 1)}.wav",
        ]
        path = next((p for p in candidates if p.exists()), candidates[0])
    return decode_audio(str(path), sampling_rate=RATE)


_NATURAL = {
    # held out: the pyannote sample (a two-person call) and AMI dev/test excerpts
    "eval": ("sample", "dev00", "dev01", "tst00"),
    # AMI training-set excerpts; in trn01, trn02 and trn07 our VAD hears almost nothing
    "tune": ("trn00", "trn03", "trn04", "trn05", "trn06", "trn08", "trn09"),
}


def natural_recordings(split: str = "eval") -> list[Recording]:
    """Real conversations as recorded (overlaps, backchannels, far-field), 30 s each."""
    notes = _ami_annotations()
    return [Recording(uri, _audio_of(uri), tuple(notes[uri])) for uri in _NATURAL[split]]


def one_voice(pool: dict[str, list[np.ndarray]], speaker: str, max_clips: int = 10) -> Recording:
    """One person's solo clips in a row with 0.7 s pauses: diarization must not split it."""
    pause = np.zeros(int(0.7 * RATE), np.float32)
    parts: list[np.ndarray] = [np.zeros(RATE // 2, np.float32)]
    turns = []
    cursor = 0.5
    for clip in pool[speaker][:max_clips]:
        parts += [clip, pause]
        turns.append(Turn(cursor, cursor + clip.size / RATE, speaker))
        cursor += clip.size / RATE + 0.7
    return Recording(f"{speaker}-alone", np.concatenate(parts), tuple(turns))


def _solo_stretches(
    turns: list[Turn], speaker: str, min_s: float = 1.5
) -> list[tuple[float, float]]:
    """Stretches where `speaker` talks and nobody else is annotated, at least `min_s` long."""
    grid = int(max(t.end for t in turns) * 100) + 1
    mine = np.zeros(grid, bool)
    others = np.zeros(grid, bool)
    for t in turns:
        target = mine if t.speaker == speaker else others
        target[int(t.start * 100) : int(t.end * 100)] = True
    solo = np.diff(np.r_[0, (mine & ~others).astype(np.int8), 0])
    starts, ends = np.flatnonzero(solo == 1), np.flatnonzero(solo == -1)
    return [(s / 100, e / 100) for s, e in zip(starts, ends, strict=True) if (e - s) / 100 >= min_s]


def _pocketsphinx_speaker() -> list[np.ndarray]:
    """One speaker's card-game commands (one recording session, five clips).

    The package's other raw clips (numbers, go forward…) were recorded elsewhere and may
    be another person (cosine 0.5–0.6 to these), so they are not used as this voice.
    """
    return [
        decode_audio(str(p), sampling_rate=RATE)
        for p in sorted((POCKETSPHINX / "cards").glob("*.wav"))
    ]


def _librivox_reader() -> list[np.ndarray]:
    return [
        decode_audio(str(p), sampling_rate=RATE)
        for p in sorted((POCKETSPHINX / "librivox").glob("*.wav"))
    ]


def voices(split: str) -> dict[str, list[np.ndarray]]:
    """Solo speech per person: `tune` (AMI train) or `eval` (everyone else)."""
    notes = _ami_annotations()
    wanted = _TUNE_AMI if split == "tune" else (*_EVAL_AMI, "speaker90", "speaker91")
    found: dict[str, list[np.ndarray]] = defaultdict(list)
    audio_cache: dict[str, np.ndarray] = {}
    for uri, turns in sorted(notes.items()):
        for speaker in {t.speaker for t in turns} & set(wanted):
            for start, end in _solo_stretches(turns, speaker):
                audio = audio_cache.setdefault(uri, _audio_of(uri))
                found[speaker].append(audio[int(start * RATE) : int(end * RATE)])
    if split == "eval":
        found["librivox"] = _librivox_reader()
        found["pocketsphinx"] = _pocketsphinx_speaker()
    return dict(found)


def espeak_voices(tmp: Path, count: int = 4) -> dict[str, list[np.ndarray]]:
    """Synthetic speakers: espeak-ng's English with voice variants of different timbre.

    Close variants (m1 and m3, say) are the same synthetic voice to a speaker encoder
    (cosine 0.95), so we take two male and two female variants of different kinds.
    """
    variants = ("m1", "f4", "david", "steph")[:count]
    lines = (
        "I have checked the schedule and the meeting moves to Thursday afternoon.",
        "That works for me, but we still need the budget numbers before then.",
        "Could you send the report to the whole team by the end of the day?",
        "The new design looks good, although the colours are a little dark.",
        "Let us talk about the customer feedback from last week first.",
        "I agree, and we should also review the open support tickets.",
    )
    found: dict[str, list[np.ndarray]] = {}
    for variant in variants:
        clips = []
        for i, line in enumerate(lines):
            path = tmp / f"espeak-{variant}-{i}.wav"
            subprocess.run(
                ["espeak-ng", "-v", f"en-us+{variant}", "-s", "160", "-w", str(path), line],
                check=True,
            )
            clips.append(decode_audio(str(path), sampling_rate=RATE))
        found[f"espeak-{variant}"] = clips
    return found


def trim_silence(clip: np.ndarray) -> np.ndarray:
    """Drop leading and trailing silence (20 ms frames 35 dB below the loudest)."""
    frame = RATE // 50
    energy = np.square(clip[: clip.size // frame * frame].reshape(-1, frame)).mean(axis=1)
    loud = np.flatnonzero(energy > energy.max() * 10 ** (-35 / 10)) if energy.size else []
    if not len(loud):
        return clip
    return clip[max(0, (loud[0] - 2) * frame) : (loud[-1] + 3) * frame]


def _split_long(clip: np.ndarray, max_s: float) -> list[np.ndarray]:
    """Cut clips longer than `max_s` at their quietest 20 ms, so turns stay turn-sized."""
    if clip.size <= max_s * RATE:
        return [clip]
    frame = RATE // 50
    energy = np.square(clip[: clip.size // frame * frame].reshape(-1, frame)).mean(axis=1)
    middle = len(energy) // 2
    window = energy[middle // 2 : middle + middle // 2]
    cut = (middle // 2 + int(np.argmin(window))) * frame
    return _split_long(clip[:cut], max_s) + _split_long(clip[cut:], max_s)


def conversation(
    pool: dict[str, list[np.ndarray]],
    speakers: list[str],
    *,
    seed: int,
    turns: int = 12,
    overlap_share: float = 0.2,
    max_turn_s: float = 6.0,
) -> Recording:
    """Alternating turns of `speakers`, with pauses of 0.3–1.2 s and some overlaps."""
    rng = random.Random(seed)
    queues = {
        s: [
            trim_silence(c) for clip in pool[s] for c in _split_long(trim_silence(clip), max_turn_s)
        ]
        for s in speakers
    }
    for clips in queues.values():
        rng.shuffle(clips)
    order: list[str] = [speakers[0]]
    while len(order) < turns:
        order.append(rng.choice([s for s in speakers if s != order[-1]]))
    for s in speakers:  # everyone speaks at least once
        if s not in order:
            order[rng.randrange(1, len(order))] = s
    placed: list[tuple[int, np.ndarray, str]] = []
    cursor = int(0.5 * RATE)
    for i, speaker in enumerate(order):
        clip = queues[speaker][i % len(queues[speaker])]
        if i and rng.random() < overlap_share:
            cursor -= int(rng.uniform(0.3, 0.6) * RATE)  # talk over the end of the last turn
        placed.append((cursor, clip, speaker))
        cursor += clip.size + int(rng.uniform(0.3, 1.2) * RATE)
    audio = np.zeros(cursor + RATE, np.float32)
    reference = []
    for start, clip, speaker in placed:
        audio[start : start + clip.size] += clip
        reference.append(Turn(start / RATE, (start + clip.size) / RATE, speaker))
    name = f"{len(speakers)}spk-seed{seed}"
    return Recording(name, np.clip(audio, -1, 1), tuple(reference))
