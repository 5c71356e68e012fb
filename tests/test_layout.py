"""The tests' own layout: ``tests/`` mirrors the code, and only ``tests/integration/`` starts processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.paths import ROOT

TESTS = ROOT / "tests"
OWN = {"support", "integration", "arq_suite"}
"""Folders of tests/ that mirror no package: shared test code, the tests that start processes, and the
runner of arq's own test suite (``make test-arq``)."""


def test_every_test_folder_mirrors_a_folder_of_the_code() -> None:
    """Each folder of tests/ (but support/ and integration/) is the path of a package of the code, or of
    the deployment files (ops/deploy/)."""
    folders = {
        path.relative_to(TESTS)
        for path in TESTS.rglob("*")
        if path.is_dir() and path.name != "__pycache__" and path.relative_to(TESTS).parts[0] not in OWN
    }
    assert folders, "tests/ has folders"
    assert sorted(str(f) for f in folders if not (ROOT / f).is_dir()) == []


def test_a_test_outside_integration_cannot_start_a_process() -> None:
    """Starting a process here fails, naming tests/integration/: `make test-fast` stays single-process."""
    with pytest.raises(RuntimeError, match="belongs under tests/integration/"):
        subprocess.run([sys.executable, "-c", "pass"], check=False)
