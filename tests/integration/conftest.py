"""Tests that start real processes: ``callq worker``, ``serve`` or a one-shot ``callq`` command, another
subprocess, or a private ``redis-server`` they stall, kill, fill or configure. Each gets the marker
``integration`` here (not by hand), so that ``make test-fast`` (``-m "not integration"``) leaves them out."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before pytest's own hook deselects by marker (-m)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test collected under this folder ``integration``."""
    for item in items:
        if HERE in item.path.resolve().parents:
            item.add_marker(pytest.mark.integration)
