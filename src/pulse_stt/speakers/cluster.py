"""Is one cluster of voice windows really two people? A test that needs no fixed threshold
on similarity.

Two people who sound alike on one channel (a phone call) can be closer in the encoder's
space than one person is to themselves on another day, so no similarity threshold tells
"two people" from "one person". What does: split the windows in two (spectral clustering
on a nearest-neighbour graph, then nearest-centroid refinement) and measure how far apart
the halves are (`separation`). Splitting one voice follows whatever varies most in it
(words, distance to the microphone), and so does splitting either half again: those
separations are alike. Two people are set apart more than either is from themselves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_NEIGHBOURS = 0.25  # share of windows each window keeps as neighbours in the graph
_MIN_NEIGHBOURS = 4
_VOICED = 0.5  # windows with less voice than this do not vote on separation
_MIN_SPLIT_WINDOWS = 6


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-9)


def pruned_affinity(embeddings: np.ndarray) -> np.ndarray:
    """Cosine affinity kept only to each window's nearest neighbours, symmetrised: a few
    windows that hold both voices then do not join two people into one."""
    n = len(embeddings)
    unit = _unit_rows(embeddings)
    sims = np.clip(unit @ unit.T, 0.0, 1.0)
    keep = min(n, max(_MIN_NEIGHBOURS, round(_NEIGHBOURS * n)))
    nearest = np.argsort(-sims, axis=1)[:, :keep]
    mask = np.zeros_like(sims, bool)
    np.put_along_axis(mask, nearest, True, axis=1)
    pruned = np.where(mask | mask.T, sims, 0.0)
    return (pruned + pruned.T) / 2


def spectral_embedding(affinity: np.ndarray, dims: int) -> np.ndarray:
    """The first `dims` eigenvectors of the normalised graph Laplacian (rows: windows)."""
    degree = affinity.sum(axis=1)
    inv = 1.0 / np.sqrt(np.maximum(degree, 1e-9))
    laplacian = np.eye(len(affinity)) - inv[:, None] * affinity * inv[None, :]
    _, vectors = np.linalg.eigh(laplacian)
    return vectors[:, :dims]


def kmeans(points: np.ndarray, k: int, iterations: int = 50) -> np.ndarray:
    """Deterministic k-means (farthest-point start) on the rows of `points`; labels."""
    n = len(points)
    if k >= n:
        return np.arange(n)
    centers = [points[int(np.argmax(np.linalg.norm(points - points.mean(0), axis=1)))]]
    while len(centers) < k:
        dist = np.min([np.linalg.norm(points - c, axis=1) for c in centers], axis=0)
        centers.append(points[int(np.argmax(dist))])
    center_arr = np.stack(centers)
    labels = np.full(n, -1, np.int64)
    for _ in range(iterations):
        dist = np.linalg.norm(points[:, None, :] - center_arr[None], axis=2)
        new = dist.argmin(axis=1)
        if np.array_equal(new, labels):
            break
        labels = new
        for j in range(k):
            if (labels == j).any():
                center_arr[j] = points[labels == j].mean(axis=0)
    return labels


def centroids(embeddings: np.ndarray, weights: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Unit weighted mean of each label's windows, (labels.max() + 1, dim)."""
    sums = np.zeros((int(labels.max()) + 1, embeddings.shape[1]))
    np.add.at(sums, labels, embeddings * weights[:, None])
    return _unit_rows(sums)


def separation(
    embeddings: np.ndarray, weights: np.ndarray, labels: np.ndarray, a: int, b: int
) -> float:
    """How far apart clusters `a` and `b` sound: over their voiced windows, the mean of
    (cosine to the own centroid, the window left out) − (cosine to the other's)."""
    totals = {c: (embeddings[labels == c] * weights[labels == c, None]).sum(0) for c in (a, b)}
    margins = []
    for i in np.flatnonzero(((labels == a) | (labels == b)) & (weights >= _VOICED)):
        own_label = int(labels[i])
        own = totals[own_label] - embeddings[i] * weights[i]
        other = totals[b if own_label == a else a]
        own_norm, other_norm = float(np.linalg.norm(own)), float(np.linalg.norm(other))
        if own_norm <= 1e-9 or other_norm <= 1e-9:
            continue
        margins.append(
            float(embeddings[i] @ own) / own_norm - float(embeddings[i] @ other) / other_norm
        )
    return float(np.mean(margins)) if margins else 0.0


def split_in_two(embeddings: np.ndarray) -> np.ndarray | None:
    """The best 2-way split of the windows (0/1 each); None if too few or inseparable."""
    if len(embeddings) < _MIN_SPLIT_WINDOWS:
        return None
    labels = kmeans(_unit_rows(spectral_embedding(pruned_affinity(embeddings), 2)), 2)
    return labels if len(np.unique(labels)) == 2 else None


@dataclass(frozen=True)
class TwoVoices:
    labels: np.ndarray  # 0/1 per window
    separation: float  # between the halves
    within: float  # the larger separation of either half split again


def two_voices(
    embeddings: np.ndarray,
    weights: np.ndarray,
    *,
    min_separation: float,
    min_ratio: float,
    min_half: int,
) -> TwoVoices | None:
    """The split of these windows into two people, or None if they sound like one.

    Two people: the halves are at least `min_separation` apart, and `min_ratio` times
    further apart than either half split again. Each half needs `min_half` windows for
    that comparison to mean anything.
    """
    split = split_in_two(embeddings)
    if split is None:
        return None
    for _ in range(2):  # nearest-centroid refinement
        split = (embeddings @ centroids(embeddings, weights, split).T).argmax(axis=1)
        if len(np.unique(split)) < 2:
            return None
    if min(int((split == half).sum()) for half in (0, 1)) < min_half:
        return None
    gap = separation(embeddings, weights, split, 0, 1)
    if gap < min_separation:
        return None
    within = 0.0
    for half in (0, 1):
        inside = split == half
        sub = split_in_two(embeddings[inside])
        if sub is None:
            return None
        within = max(within, separation(embeddings[inside], weights[inside], sub, 0, 1))
    if gap < min_ratio * within:
        return None
    return TwoVoices(split, gap, within)
