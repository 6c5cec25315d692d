"""A soak run's outcome (`SoakReport`) and its text form: the resource table and a
summary that ends with `LOST FINALS: n`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from tests.support.soak.inputs import SoakOptions
from tests.support.soak.resources import ResourceSample
from tests.support.soak.scoring import ConnectionReport, TurnOutcome


@dataclass
class SoakReport:
    options: SoakOptions
    wall_s: float
    connections: list[ConnectionReport]
    samples: list[ResourceSample]

    @property
    def served(self) -> list[ConnectionReport]:
        return [c for c in self.connections if not c.refused]

    @property
    def lost_finals(self) -> int:
        return sum(c.lost for c in self.served)

    @property
    def duplicated_finals(self) -> int:
        return sum(c.duplicated for c in self.served)

    @property
    def unheard_turns(self) -> int:
        return sum(c.unheard for c in self.served)

    @property
    def unexpected(self) -> list[str]:
        return [
            f"stream {c.stream}: {problem}" for c in self.connections for problem in c.unexpected
        ]

    @property
    def refusals(self) -> Counter[str]:
        return Counter(str(c.refused) for c in self.connections if c.refused)

    @property
    def turns(self) -> list[TurnOutcome]:
        return [t for c in self.served for t in c.turns]

    @property
    def endings(self) -> Counter[str]:
        return Counter(
            c.ended if c.ended.startswith("dropped") else f"{c.ended} {c.close_code}"
            for c in self.served
        )

    def rss_after_warmup(self, warmup_s: float) -> tuple[int, int, int] | None:
        """(first RSS sample at or after `warmup_s`, peak after it, last sample), in bytes."""
        after = [s.rss_bytes for s in self.samples if s.at_s >= warmup_s and s.rss_bytes]
        if not after:
            return None
        return after[0], max(after), after[-1]


def _mb(value: int | None) -> str:
    return f"{value / 2**20:.0f}" if value else "-"


SAMPLE_HEADER = (
    "| t (s) | server RSS (MB) | server CPU (cores) | active sessions | connections | turns "
    "| finals | errors |"
)


def sample_row(sample: ResourceSample, previous: ResourceSample | None) -> str:
    cpu = "-"
    if previous and sample.cpu_s is not None and previous.cpu_s is not None:
        cpu = f"{(sample.cpu_s - previous.cpu_s) / max(1e-6, sample.at_s - previous.at_s):.2f}"
    active = "-" if sample.active_sessions is None else f"{sample.active_sessions:.0f}"
    return (
        f"| {sample.at_s:.0f} | {_mb(sample.rss_bytes)} | {cpu} | {active} "
        f"| {sample.connections} | {sample.turns} | {sample.finals} | {sample.errors} |"
    )


def _p(values: Sequence[float], q: float) -> str:
    return f"{float(np.percentile(values, q)):.2f}" if values else "-"


def format_report(report: SoakReport, *, warmup_s: float = 15.0) -> str:
    """The RSS table and the summary, ending with the line `LOST FINALS: n`."""
    o = report.options
    lines = [SAMPLE_HEADER, "|---" * 8 + "|"]
    previous = None
    for sample in report.samples:
        lines.append(sample_row(sample, previous))
        previous = sample
    served, turns = report.served, report.turns
    behaviours = Counter(t.behaviour for t in turns)
    bad = sum((c.bad_frames for c in served), Counter[str]())
    errors = sum((c.errors for c in served), Counter[str]())
    finalize_rtt = [x for c in served for x in c.finalize_rtt]
    eou_delay = [t.final_delay_s for t in turns if t.behaviour == "eou" and t.final_delay_s]
    encodings = Counter(c.encoding for c in served)
    lines += [
        "",
        f"{o.streams} streams for {o.duration_s:.0f} s at {o.speed:g}x real time, seed {o.seed}; "
        f"ran {report.wall_s:.0f} s",
        f"connections: {len(served)} served ({_counts(encodings)}), "
        f"refused: {_counts(report.refusals) or 0}",
        f"endings: {_counts(report.endings)}",
        f"turns: {len(turns)} ({_counts(behaviours)}); audio sent "
        f"{sum(c.audio_s for c in served) / 60:.1f} min",
        f"finals received: {sum(c.finals for c in served)}; finalize round trip p50/p95 "
        f"{_p(finalize_rtt, 50)} / {_p(finalize_rtt, 95)} s; eou final after clip end "
        f"p50/p95 {_p(eou_delay, 50)} / {_p(eou_delay, 95)} s",
        f"bad frames sent: {_counts(bad) or 0}; errors received: {_counts(errors) or 0}",
    ]
    rss = report.rss_after_warmup(warmup_s)
    if rss:
        first, peak, last = rss
        lines.append(
            f"server RSS after {warmup_s:g} s warm-up: first {_mb(first)} MB, peak {_mb(peak)} "
            f"MB, last {_mb(last)} MB (last/first {last / first:.2f})"
        )
    unexpected = report.unexpected
    lines += [
        f"unexpected errors: {len(unexpected)}",
        *(f"  {problem}" for problem in unexpected[:20]),
        f"unheard turns: {report.unheard_turns}",
        f"DUPLICATED FINALS: {report.duplicated_finals}",
        f"LOST FINALS: {report.lost_finals}",
    ]
    return "\n".join(lines)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {value}" for key, value in sorted(counter.items()))
