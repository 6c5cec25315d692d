"""Suite-wide collection rules: everything under tests/e2e/ is an end-to-end test.

The `e2e` marker follows from the directory, so `pytest -m "not e2e"` (`make test-unit`)
never starts a server, whether or not a module also sets `pytestmark`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

E2E_DIR = Path(__file__).parent / "e2e"


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(E2E_DIR):
            item.add_marker(pytest.mark.e2e)
