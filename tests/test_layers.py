"""The layering rule, checked on the code as it is (import-linter; the contracts are in pyproject.toml):

- ``ops`` (the ``callq`` command, benchmarks) on top; ``worker`` and ``producers`` side by side, never
  importing each other; ``schemas`` (the shared contract) below; nothing imports anything above it;
- the sandbox portal (``ops.sandbox``) shares no code with callq;
- only ``schemas.jobqueue`` imports arq.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]


def test_every_import_keeps_to_the_layers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """import-linter finds every contract of pyproject.toml kept."""
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=os.fspath(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out
