"""What the soak samples of the server while it runs: RSS and CPU time from /proc (when
the server runs on this machine), active sessions from its /metrics."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from pulse_stt.client.endpoints import Endpoints


@dataclass(frozen=True)
class ResourceSample:
    at_s: float  # since the soak started
    rss_bytes: int | None  # the server's resident memory (VmRSS), when its pid is known
    cpu_s: float | None  # the server's CPU time so far (user + system)
    active_sessions: float | None  # from the server's /metrics, when it serves them
    connections: int
    turns: int
    finals: int
    errors: int


def process_usage(pid: int) -> tuple[int, float]:
    """(resident bytes, CPU seconds used) of a process on this machine, from /proc."""
    rss_kb = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return rss_kb * 1024, (int(fields[11]) + int(fields[12])) / 100.0  # utime + stime ticks


async def active_sessions(client: httpx.AsyncClient, http_url: str) -> float | None:
    """Sum of `pulse_stt_active_sessions` on the server's /metrics (None if not served)."""
    try:
        response = await client.get(f"{http_url}/metrics", timeout=5)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:
        values = [
            sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples
            if sample.name == "pulse_stt_active_sessions"
        ]
    except ValueError:  # not the Prometheus text format
        return None
    return sum(values) if values else None


def http_base(ws_url: str) -> str:
    """The http(s):// base of a ws(s):// server URL."""
    return Endpoints.from_base_url(ws_url).http("")
