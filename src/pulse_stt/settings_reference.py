"""The configuration reference (`docs/CONFIGURATION.md`), generated from the settings object.

`pulse-stt settings` prints it; a unit test checks the committed page is current, so the
reference can never drift from the code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from pulse_stt.config import Settings, setting_env, setting_flag

_HEADER = """\
# Configuration reference

Generated from `pulse_stt.config.Settings` by `pulse-stt settings` — do not edit by hand
(`make docs` regenerates it; a test fails when it is stale).

Every setting can be given three ways; later ones win:

1. its default (below);
2. an environment variable `PULSE_STT_<NAME>` (e.g. `PULSE_STT_COMPUTE_TYPE=int8`);
3. a flag of `pulse-stt serve` (e.g. `--compute-type int8`).

Booleans accept `true`/`false` (also `1`/`0`, `yes`/`no`). Sizes are bytes, durations
seconds unless the name says `_ms`.

| setting | environment variable / flag | default | meaning |
|---|---|---|---|
"""


def _default(field: FieldInfo) -> str:
    if field.default_factory is not None:
        value: Any = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, Path):  # home-relative: show it the way a reader's will look
            try:
                return "`~/" + str(value.relative_to(Path.home())) + "`"
            except ValueError:
                return f"`{value}`"
        return f"`{value}`"
    if field.default is PydanticUndefined:
        return "(required)"
    if field.default is None:
        return "unset"
    if isinstance(field.default, bool | int | float):
        return f"`{json.dumps(field.default)}`"
    return f"`{field.default}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def reference_markdown() -> str:
    rows = []
    for name, field in Settings.model_fields.items():
        env, flag = setting_env(name), setting_flag(name)
        rows.append(
            f"| `{name}` | `{env}`<br>`{flag}` | {_cell(_default(field))} "
            f"| {_cell(field.description or '')} |"
        )
    return _HEADER + "\n".join(rows) + "\n"
