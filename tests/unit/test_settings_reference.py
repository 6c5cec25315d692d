"""The configuration reference page is generated from the settings object and kept current."""

from __future__ import annotations

from pathlib import Path

from pulse_stt.config import Settings
from pulse_stt.settings_reference import reference_markdown

PAGE = Path(__file__).resolve().parents[2] / "docs" / "CONFIGURATION.md"


def test_every_setting_has_a_row_with_its_variable_flag_and_description() -> None:
    page = reference_markdown()
    for name, field in Settings.model_fields.items():
        row = next(line for line in page.splitlines() if line.startswith(f"| `{name}` |"))
        assert f"PULSE_STT_{name.upper()}" in row
        assert "--" + name.replace("_", "-") in row
        assert field.description, f"setting {name} has no description"


def test_committed_page_is_current() -> None:
    assert PAGE.read_text() == reference_markdown(), (
        "docs/CONFIGURATION.md is stale: run `make docs`"
    )
