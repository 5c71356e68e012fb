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

import pytest
from importlinter.cli import lint_imports

from tests.support.paths import ROOT


@pytest.fixture
def loggers_kept() -> Iterator[None]:
    """Undo what import-linter's command does to logging (its dictConfig disables every logger that exists,
    aiohttp's and redis-py's included, for every later test)."""
    loggers = logging.root.manager.loggerDict
    disabled = {
        name: logger.disabled for name, logger in loggers.items() if isinstance(logger, logging.Logger)
    }
    yield
    for name, logger in list(loggers.items()):
        if isinstance(logger, logging.Logger):
            logger.disabled = disabled.get(name, False)


def test_every_import_keeps_to_the_layers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], loggers_kept: None
) -> None:
    """import-linter finds every contract of pyproject.toml kept."""
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=os.fspath(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out
