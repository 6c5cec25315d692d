"""Who is speaking: window embeddings → speaker numbers, live and for whole files.

Live (`SpeakerTracker`): each turn's windows are labelled by a Viterbi pass over the
session's known speakers plus one "someone new" state whose score is a fixed similarity
threshold; a switch between states costs a penalty, so one odd window does not flip a
label but a sustained change inside a turn does. Committed (final) turns update the
speakers' centroids; partials are labelled against them without changing anything.
While only one speaker is known, each final also asks `cluster.two_voices` whether the
voice so far is two people who sound alike (a phone call, where the other person never
falls below the "someone new" threshold); if so, the second becomes speaker 1 from then on.
With two speakers or more, one that holds most of the voice (more than
`split_largest_share`, 80 %: in a far-field meeting several people can fall into one cluster) is
tested the same way, asking for a wider split; its other half becomes a new speaker.

Files (`label_file`): the same online pass proposes speakers, then whole-file clustering
revises them: speakers whose centroids are close are merged, speakers with too little
voice are folded into their nearest neighbour, a single speaker left (or the largest of
several, as live) is tested with `cluster.two_voices`, and every turn is labelled again
against the final set (twice, re-estimating centroids in between).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pulse_stt.speakers.cluster import centroids as centroids_of
from pulse_stt.speakers.cluster import two_voices
from pulse_stt.speakers.encoder import TurnWindows


@dataclass(frozen=True)
class TrackerConfig:
    new_speaker_similarity: float = 0.75  # below this, a window sounds like someone new
    # A centroid from few windows sits further from its speaker's next window than a
    # mature one: its similarities get a boost of young_bonus / sqrt(windows behind it).
    young_bonus: float = 0.1
    switch_penalty: float = 0.15  # Viterbi cost of changing speaker between windows
    merge_similarity: float = 0.80  # centroids this close are one person
    temperature: float = 0.04  # softmax temperature for confidences
    min_new_speech_s: float = 1.0  # voice needed before a new speaker is believed
    min_speaker_windows: float = 2.0  # files: smaller clusters are folded into neighbours
    # One speaker may be two people who sound alike (a phone call): split when the halves
    # are this far apart (cluster.separation) and min_ratio times further apart than
    # either half from itself. Windows needed in each half (about 5 s / 7 s of voice):
    # live tests again and again as a session grows, so it asks for more.
    split_min_separation: float = 0.07
    split_min_ratio: float = 1.2
    split_min_half_file: int = 8
    split_min_half_live: int = 12
    # With two speakers or more, one holding more than split_largest_share of the voice (a
    # far-field meeting where several people fall into one cluster) is tested too, asking
    # for a wider split. At 0.6–0.7 the tuning conversations' voices (clips from several
    # meetings, 68–77 % of the voice) were split; AMI tst00's merged cluster holds 89–91 %.
    split_largest_share: float = 0.8
    split_largest_min_separation: float = 0.10
    split_largest_min_ratio: float = 0.95


@dataclass(frozen=True)
class SpeakerSpan:
    start: float  # seconds since the stream start
    end: float
    speaker: int
    confidence: float


@dataclass(frozen=True)
class SpeakerTrack:
    spans: tuple[SpeakerSpan, ...]

    def label(self, start: float, end: float) -> tuple[int, float] | None:
        """The speaker of [start, end]: the span overlapping it most, else the nearest."""
        if not self.spans:
            return None

        def overlap(span: SpeakerSpan) -> float:
            return min(end, span.end) - max(start, span.start)

        def distance(span: SpeakerSpan) -> float:
            mid = (start + end) / 2
            return max(span.start - mid, mid - span.end, 0.0)

        best = max(self.spans, key=overlap)
        if overlap(best) <= 0:
            best = min(self.spans, key=distance)
        return best.speaker, best.confidence


_HISTORY_WINDOWS = 400  # about 3 minutes of voice
_RETEST_WINDOWS = 8


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0 else vector


@dataclass
class _Speaker:
    total: np.ndarray  # weighted sum of window embeddings
    weight: float

    @property
    def centroid(self) -> np.ndarray:
        return _unit(self.total)


def _viterbi(scores: np.ndarray, penalty: float) -> np.ndarray:
    """Best state path through (n_windows, n_states) scores, `penalty` per switch."""
    n, states = scores.shape
    best = scores[0].copy()
    back = np.zeros((n, states), np.int64)
    for i in range(1, n):
        stay = best
        switch = best.max() - penalty
        from_best = int(best.argmax())
        back[i] = np.where(stay >= switch, np.arange(states), from_best)
        best = np.maximum(stay, switch) + scores[i]
    path = np.zeros(n, np.int64)
    path[-1] = int(best.argmax())
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def _decode(
    windows: TurnWindows, scores: np.ndarray, config: TrackerConfig
) -> tuple[np.ndarray, list[float]]:
    """The Viterbi path over `scores` (windows × states) and each window's confidence."""
    # Windows that are mostly silence carry little evidence either way.
    evidence = np.clip(windows.speech * 1.5, 0.2, 1.0)[:, None]
    path = _viterbi(scores * evidence, config.switch_penalty)
    confidences = [_confidence(scores[i], int(s), config.temperature) for i, s in enumerate(path)]
    return path, confidences


def _confidence(similarities: np.ndarray, chosen: int, temperature: float) -> float:
    logits = similarities / temperature
    probs = np.exp(logits - logits.max())
    return float(probs[chosen] / probs.sum())


def _spans(
    windows: TurnWindows, labels: list[int], confidences: list[float]
) -> tuple[SpeakerSpan, ...]:
    """Runs of equal labels; boundaries halfway between the neighbouring window centres."""
    centers = windows.centers
    turn_start, turn_end = windows.offset, windows.offset + windows.duration
    spans: list[SpeakerSpan] = []
    run_start = 0
    for i in range(1, len(labels) + 1):
        if i < len(labels) and labels[i] == labels[run_start]:
            continue
        start = turn_start if run_start == 0 else (centers[run_start - 1] + centers[run_start]) / 2
        end = turn_end if i == len(labels) else (centers[i - 1] + centers[i]) / 2
        confidence = float(np.mean(confidences[run_start:i]))
        spans.append(SpeakerSpan(float(start), float(end), labels[run_start], round(confidence, 3)))
        run_start = i
    return tuple(spans)


@dataclass
class SpeakerTracker:
    """A session's speakers. Not thread-safe: call it in turn order from one place."""

    config: TrackerConfig = field(default_factory=TrackerConfig)
    speakers: list[_Speaker] = field(default_factory=list)
    last_speaker: int = 0
    # While one speaker is known: the committed windows (embeddings, weights), so that a
    # second voice close to the first (a phone call) can still be told apart.
    history: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)
    untested_windows: int = 0  # committed since the last such test

    def label(self, windows: TurnWindows, *, commit: bool) -> SpeakerTrack:
        n = len(windows.embeddings)
        turn_end = windows.offset + windows.duration
        if n == 0:  # too short to hear who it is: assume the conversation goes on
            return SpeakerTrack((SpeakerSpan(windows.offset, turn_end, self.last_speaker, 0.3),))
        cfg = self.config
        first_turn = not self.speakers
        if commit and len(self.speakers) <= 1:
            self._split_one(windows)
        elif commit:
            self._split_largest(windows)
        centroids = [s.centroid for s in self.speakers]
        maturity = [s.weight for s in self.speakers]
        bootstrap = not centroids
        if bootstrap:  # nobody known yet: the turn's opening is its first speaker
            centroids = [_unit(windows.embeddings[: min(2, n)].mean(axis=0))]
            maturity = [float(min(2, n))]
        known = np.stack(centroids)
        bonus = cfg.young_bonus / np.sqrt(np.maximum(maturity, 1.0))
        similarities = windows.embeddings @ known.T + bonus[None, :]
        scores = np.concatenate([similarities, np.full((n, 1), cfg.new_speaker_similarity)], axis=1)
        path, confidences = _decode(windows, scores, cfg)
        new_state = len(known)
        labels, confidences = self._resolve(
            windows, path, confidences, scores, new_state, bootstrap, commit
        )
        if first_turn and len(self.speakers) >= 2 and labels[0] == 1:
            # The session's first turn held two people: number them as they are heard.
            self.speakers[0], self.speakers[1] = self.speakers[1], self.speakers[0]
            labels = [{0: 1, 1: 0}.get(label, label) for label in labels]
            self.last_speaker = labels[-1]
        return SpeakerTrack(_spans(windows, labels, confidences))

    def _due_for_test(self, windows: TurnWindows) -> tuple[np.ndarray, np.ndarray] | None:
        """Adds a final's windows to the history; the recent history (embeddings, weights)
        when a split test is due: after 8 more windows (4 s of voice), or a quarter more
        once the history is long, so that a long session costs little."""
        self.history.append((windows.embeddings, np.clip(windows.speech, 0.05, 1.0)))
        embeddings = np.concatenate([e for e, _ in self.history])[-_HISTORY_WINDOWS:]
        weights = np.concatenate([w for _, w in self.history])[-_HISTORY_WINDOWS:]
        self.untested_windows += len(windows.embeddings)
        if self.untested_windows < max(_RETEST_WINDOWS, len(embeddings) // 4):
            return None
        self.untested_windows = 0
        return embeddings, weights

    def _split_one(self, windows: TurnWindows) -> None:
        """With one speaker known (or none), test whether the voice so far is two people;
        if so, speaker 0 keeps the half most like it and speaker 1 is the other half.
        Labels already given stay as they are: only what follows is labelled anew."""
        due = self._due_for_test(windows)
        if due is None:
            return
        embeddings, weights = due
        found = two_voices(
            embeddings,
            weights,
            min_separation=self.config.split_min_separation,
            min_ratio=self.config.split_min_ratio,
            min_half=self.config.split_min_half_live,
        )
        if found is None:
            return
        halves = [
            _Speaker((embeddings[m] * weights[m, None]).sum(0), float(weights[m].sum()))
            for m in (found.labels == 0, found.labels == 1)
        ]
        if self.speakers:  # the known speaker keeps number 0
            known = self.speakers[0].centroid
            first = int(np.argmax([float(h.centroid @ known) for h in halves]))
        else:  # nobody labelled yet: whoever opens the turn is speaker 0
            first = int(found.labels[len(embeddings) - len(windows.embeddings)])
        self.speakers = [halves[first], halves[1 - first]]
        self.history.clear()

    def _split_largest(self, windows: TurnWindows) -> None:
        """With two speakers or more, test whether the one holding most of the voice since
        the last split is two people; if so, it keeps the half most like it and the other
        half becomes a new speaker."""
        due = self._due_for_test(windows)
        if due is None:
            return
        embeddings, weights = due
        cents = np.stack([s.centroid for s in self.speakers])
        found = _split_largest(
            embeddings, weights, cents, self.config, self.config.split_min_half_live
        )
        if found is None:
            return
        largest, halves = found
        keep = int(np.argmax(halves @ cents[largest]))
        weight = self.speakers[largest].weight / 2
        self.speakers[largest] = _Speaker(halves[keep] * weight, weight)
        self.speakers.append(_Speaker(halves[1 - keep] * weight, weight))
        self.history.clear()

    def _resolve(
        self,
        windows: TurnWindows,
        path: np.ndarray,
        confidences: list[float],
        scores: np.ndarray,
        new_state: int,
        bootstrap: bool,
        commit: bool,
    ) -> tuple[list[int], list[float]]:
        cfg = self.config
        weights = np.clip(windows.speech, 0.05, 1.0)
        # Someone new only with enough voice behind it; else the best known speaker.
        is_new = path == new_state
        if is_new.any():  # seconds of voice: 1.6 s for one window, +0.5 s for each further one
            span_s = 1.6 + 0.5 * (int(is_new.sum()) - 1)
            new_voice = span_s * float(weights[is_new].mean())
        else:
            new_voice = 0.0
        if is_new.any() and new_voice < cfg.min_new_speech_s:
            for i in np.flatnonzero(is_new):
                best = int(scores[i, :new_state].argmax())
                path[i] = best
                confidences[i] = min(confidences[i], 0.5)
            is_new = path == new_state
        mapping: dict[int, int] = {}
        if bootstrap:
            mapping[0] = 0
        if is_new.any():
            new_total = (windows.embeddings[is_new] * weights[is_new, None]).sum(axis=0)
            # A "new" voice that matches a known speaker's centroid is that speaker.
            match = self._closest(_unit(new_total))
            if match is not None and match[1] >= cfg.merge_similarity:
                mapping[new_state] = match[0]
            else:
                mapping[new_state] = len(self.speakers) + (1 if bootstrap else 0)
        labels = [mapping.get(int(s), int(s)) for s in path]
        if commit:
            for label in dict.fromkeys(labels):
                mask = np.array([lab == label for lab in labels])
                total = (windows.embeddings[mask] * weights[mask, None]).sum(axis=0)
                while label >= len(self.speakers):
                    self.speakers.append(_Speaker(np.zeros_like(total), 0.0))
                self.speakers[label].total = self.speakers[label].total + total
                self.speakers[label].weight += float(weights[mask].sum())
            self.last_speaker = labels[-1]
        return labels, confidences

    def _closest(self, embedding: np.ndarray) -> tuple[int, float] | None:
        if not self.speakers:
            return None
        sims = [float(embedding @ s.centroid) for s in self.speakers]
        best = int(np.argmax(sims))
        return best, sims[best]


def _relabel(
    windows: TurnWindows, centroids: np.ndarray, config: TrackerConfig
) -> tuple[list[int], list[float]]:
    if not len(windows.embeddings):
        return [], []
    scores = windows.embeddings @ centroids.T
    path, confidences = _decode(windows, scores, config)
    return [int(s) for s in path], confidences


def _two_in_one(turns: list[TurnWindows], config: TrackerConfig) -> np.ndarray | None:
    """Centroids of two people if the file's one speaker is really two (cluster.two_voices)."""
    voiced = [w for w in turns if len(w.embeddings)]
    if not voiced:
        return None
    embeddings = np.concatenate([w.embeddings for w in voiced])
    weights = np.concatenate([np.clip(w.speech, 0.05, 1.0) for w in voiced])
    found = two_voices(
        embeddings,
        weights,
        min_separation=config.split_min_separation,
        min_ratio=config.split_min_ratio,
        min_half=config.split_min_half_file,
    )
    if found is None:
        return None
    return centroids_of(embeddings, weights, found.labels)


def _split_largest(
    embeddings: np.ndarray,
    weights: np.ndarray,
    centroids: np.ndarray,
    config: TrackerConfig,
    min_half: int,
) -> tuple[int, np.ndarray] | None:
    """The largest speaker and the centroids of its two halves, if it holds more than
    `split_largest_share` of the voice and `cluster.two_voices` (stricter) says it is two."""
    labels = (embeddings @ centroids.T).argmax(axis=1)
    share = np.bincount(labels, weights=weights, minlength=len(centroids)) / weights.sum()
    largest = int(share.argmax())
    if share[largest] <= config.split_largest_share:
        return None
    inside = labels == largest
    found = two_voices(
        embeddings[inside],
        weights[inside],
        min_separation=config.split_largest_min_separation,
        min_ratio=config.split_largest_min_ratio,
        min_half=min_half,
    )
    if found is None:
        return None
    return largest, centroids_of(embeddings[inside], weights[inside], found.labels)


def label_file(turns: list[TurnWindows], config: TrackerConfig | None = None) -> list[SpeakerTrack]:
    """Speakers of a whole file: online proposal, then clustering revises it."""
    config = config or TrackerConfig()
    online = SpeakerTracker(config)
    proposals = [online.label(w, commit=True) for w in turns]
    speakers = [s for s in online.speakers if s.weight > 0]
    if not speakers:
        return proposals
    totals = [s.total.copy() for s in speakers]
    weights = [s.weight for s in speakers]
    # Agglomerative merging of close centroids (average of members = sum of totals).
    while len(totals) > 1:
        cents = np.stack([_unit(t) for t in totals])
        sims = cents @ cents.T
        np.fill_diagonal(sims, -1.0)
        i, j = map(int, np.unravel_index(int(sims.argmax()), sims.shape))
        small = min(range(len(weights)), key=weights.__getitem__)
        if sims[i, j] >= config.merge_similarity:
            pass
        elif weights[small] < config.min_speaker_windows:
            i = small
            j = int(sims[small].argmax())
        else:
            break
        totals[j] = totals[j] + totals[i]
        weights[j] += weights[i]
        del totals[i], weights[i]
    centroids = np.stack([_unit(t) for t in totals])
    if len(centroids) == 1:
        split = _two_in_one(turns, config)
        if split is None and len(speakers) == 1:
            return proposals
        centroids = centroids if split is None else split
    else:
        voiced = [w for w in turns if len(w.embeddings)]
        embeddings = np.concatenate([w.embeddings for w in voiced])
        speech = np.concatenate([np.clip(w.speech, 0.05, 1.0) for w in voiced])
        found = _split_largest(embeddings, speech, centroids, config, config.split_min_half_file)
        if found is not None:
            centroids = np.concatenate([np.delete(centroids, found[0], axis=0), found[1]])
    labelled: list[tuple[list[int], list[float]]] = []
    for _ in range(2):  # relabel, re-estimate, relabel
        labelled = [_relabel(w, centroids, config) for w in turns]
        sums = np.zeros_like(centroids)
        for w, (labels, _) in zip(turns, labelled, strict=True):
            for emb, speech, label in zip(w.embeddings, w.speech, labels, strict=True):
                sums[label] += emb * max(speech, 0.05)
        keep = np.linalg.norm(sums, axis=1) > 0
        centroids = np.stack([_unit(s) for s in sums[keep]])
    # Number speakers by first appearance, as a live session would.
    order: dict[int, int] = {}
    for labels, _ in labelled:
        for label in labels:
            order.setdefault(label, len(order))
    tracks: list[SpeakerTrack] = []
    last = 0
    for w, (labels, confidences) in zip(turns, labelled, strict=True):
        if not labels:
            tracks.append(SpeakerTrack((SpeakerSpan(w.offset, w.offset + w.duration, last, 0.3),)))
            continue
        numbered = [order[label] for label in labels]
        last = numbered[-1]
        tracks.append(SpeakerTrack(_spans(w, numbered, confidences)))
    return tracks
