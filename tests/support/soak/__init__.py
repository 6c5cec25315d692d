"""The soak: N callers for M minutes with random behaviour, every final owed accounted for
(`driver.run_soak`; tests/e2e/test_soak.py runs it short, bench/soak.py long)."""

from tests.support.soak.driver import run_soak
from tests.support.soak.inputs import (
    BEHAVIOURS,
    OPUS_PACKET_S,
    BadFrame,
    Behaviour,
    SoakClip,
    SoakOptions,
    invalid_opus_packet,
    opus_packets,
)
from tests.support.soak.report import SAMPLE_HEADER, SoakReport, format_report, sample_row
from tests.support.soak.resources import ResourceSample, active_sessions, http_base, process_usage
from tests.support.soak.scoring import (
    Arrival,
    ConnectionReport,
    TurnOutcome,
    TurnRecord,
    eou_covered,
    score_connection,
)

__all__ = [
    "BEHAVIOURS",
    "OPUS_PACKET_S",
    "SAMPLE_HEADER",
    "Arrival",
    "BadFrame",
    "Behaviour",
    "ConnectionReport",
    "ResourceSample",
    "SoakClip",
    "SoakOptions",
    "SoakReport",
    "TurnOutcome",
    "TurnRecord",
    "active_sessions",
    "eou_covered",
    "format_report",
    "http_base",
    "invalid_opus_packet",
    "opus_packets",
    "process_usage",
    "run_soak",
    "sample_row",
    "score_connection",
]
