"""The layering rule, checked on the code as it is (import-linter; the contracts are in pyproject.toml):

- ``ops`` (the ``callq`` command, benchmarks) on top; ``worker`` and ``producers`` side by side, never
  importing each other; ``schemas`` (the shared contract) below; nothing imports anything above it;
- the sandbox portal (``ops.sandbox``) shares no code with callq;
- only ``schemas.jobqueue`` imports arq.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def loggers_kept() -> Iterator[None]:
    """import-linter configures logging with ``dictConfig``, which disables every logger that exists
    (``aiohttp.server``, ``redis.asyncio.client``…): enable them again afterwards, as they were, so
    that later tests see their records."""
    loggers = [item for item in logging.root.manager.loggerDict.values() if isinstance(item, logging.Logger)]
    disabled = {logger.name: logger.disabled for logger in loggers}
    yield
    for logger in loggers:
        logger.disabled = disabled[logger.name]


def test_every_import_keeps_to_the_layers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], loggers_kept: None
) -> None:
    """import-linter finds every contract of pyproject.toml kept."""
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=os.fspath(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out
