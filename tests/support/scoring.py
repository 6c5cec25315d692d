"""Diarization scores: DER (NIST md-eval definition, with a collar) and word-level accuracy.

DER = (missed speech + false alarm + speaker confusion) / reference speech, counted per
speaker on a 10 ms grid, with ±`collar` seconds around every reference boundary left
out, under the speaker mapping that maximises overlap.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

STEP = 0.01


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    speaker: str | int


@dataclass(frozen=True)
class DerResult:
    der: float
    miss: float
    false_alarm: float
    confusion: float
    reference_s: float

    def __str__(self) -> str:
        return (
            f"DER {self.der:.3f} (miss {self.miss:.3f}, fa {self.false_alarm:.3f}, "
            f"confusion {self.confusion:.3f})"
        )


def _activity(segments: Sequence[Segment], frames: int) -> tuple[list[str | int], np.ndarray]:
    names = list(dict.fromkeys(s.speaker for s in segments))
    grid = np.zeros((len(names), frames), bool)
    for s in segments:
        grid[names.index(s.speaker), round(s.start / STEP) : round(s.end / STEP)] = True
    return names, grid


def best_mapping(overlap: np.ndarray) -> dict[int, int]:
    """hyp index → ref index maximising total overlap (exhaustive; fine for ≤ 7 speakers)."""
    n_ref, n_hyp = overlap.shape
    size = max(n_ref, n_hyp)
    padded = np.zeros((size, size))
    padded[:n_ref, :n_hyp] = overlap
    best, best_perm = -1.0, tuple(range(size))
    for perm in itertools.permutations(range(size)):  # perm[hyp] = ref
        total = padded[list(perm), range(size)].sum()
        if total > best:
            best, best_perm = total, perm
    return {h: r for h, r in enumerate(best_perm) if h < n_hyp and r < n_ref}


def der(
    reference: Sequence[Segment], hypothesis: Sequence[Segment], collar: float = 0.25
) -> DerResult:
    end = max([s.end for s in reference] + [s.end for s in hypothesis] + [0.0])
    frames = int(end / STEP) + 2
    _, ref = _activity(reference, frames)
    _, hyp = _activity(hypothesis, frames)
    scored = np.ones(frames, bool)
    pad = round(collar / STEP)
    for s in reference:
        for edge in (s.start, s.end):
            i = round(edge / STEP)
            scored[max(0, i - pad) : i + pad] = False
    ref, hyp = ref[:, scored], hyp[:, scored]
    mapping = best_mapping(ref.astype(float) @ hyp.T.astype(float)) if len(hyp) and len(ref) else {}
    n_ref = ref.sum(axis=0)
    n_hyp = hyp.sum(axis=0) if len(hyp) else np.zeros_like(n_ref)
    correct = np.zeros_like(n_ref)
    for h, r in mapping.items():
        correct += ref[r] & hyp[h]
    total = float(n_ref.sum())
    miss = float(np.maximum(n_ref - n_hyp, 0).sum())
    fa = float(np.maximum(n_hyp - n_ref, 0).sum())
    confusion = float((np.minimum(n_ref, n_hyp) - correct).sum())
    denominator = max(total, 1.0)
    return DerResult(
        (miss + fa + confusion) / denominator,
        miss / denominator,
        fa / denominator,
        confusion / denominator,
        total * STEP,
    )


def word_accuracy(reference: Sequence[Segment], words: Sequence[Segment]) -> float:
    """Share of words whose speaker (after the best mapping) is one who was speaking then."""
    if not words:
        return 0.0
    ref_names = list(dict.fromkeys(s.speaker for s in reference))
    hyp_names = list(dict.fromkeys(w.speaker for w in words))
    truth: list[set[int]] = []
    for w in words:
        mid = (w.start + w.end) / 2
        active = {
            ref_names.index(s.speaker) for s in reference if s.start - 0.1 <= mid <= s.end + 0.1
        }
        if not active:  # between turns: the nearest one
            nearest = min(reference, key=lambda s: min(abs(mid - s.start), abs(mid - s.end)))
            active = {ref_names.index(nearest.speaker)}
        truth.append(active)
    votes = np.zeros((len(ref_names), len(hyp_names)))
    for w, active in zip(words, truth, strict=True):
        for r in active:
            votes[r, hyp_names.index(w.speaker)] += 1
    mapping = best_mapping(votes)
    hits = sum(
        1
        for w, active in zip(words, truth, strict=True)
        if mapping.get(hyp_names.index(w.speaker)) in active
    )
    return hits / len(words)
