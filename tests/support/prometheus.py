"""Reading a server's `/metrics` in tests (parsed by prometheus_client's own parser)."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

# Every exported sample, by (name, its labels sorted).
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse_samples(text: str) -> Samples:
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape_samples(http: str) -> Samples:
    """`http`: the server's base URL."""
    return parse_samples(httpx.get(f"{http}/metrics", timeout=10).text)


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sample with exactly these labels; 0 when it is not exported (yet)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: Samples, name: str) -> float:
    """The sum of `name` over all its label values."""
    return sum(v for (sample, _), v in samples.items() if sample == name)
