"""docs/CLIENTS.md names the client versions the suite actually runs (the pins of
tests/support/clients/requirements.txt, which `make clients` installs)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_clients_page_names_the_pinned_versions() -> None:
    pins = dict(
        re.findall(
            r"^([a-z-]+)(?:\[[a-z]+\])?==(\S+)$",
            (REPO / "tests/support/clients/requirements.txt").read_text(),
            re.MULTILINE,
        )
    )
    assert set(pins) == {"livekit-plugins-smallestai", "pipecat-ai", "smallestai"}
    page = (REPO / "docs/CLIENTS.md").read_text()
    for name, version in pins.items():
        row = next(line for line in page.splitlines() if line.startswith(f"| `{name}"))
        assert f"| {version} |" in row, (name, version, row)
    assert "docs/CLIENTS.md" in (REPO / "README.md").read_text()
