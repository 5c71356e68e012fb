"""The layering rule, checked on the code as it is (import-linter; the contracts are in pyproject.toml):

- ``ops`` (the ``callq`` command, benchmarks) on top; ``worker`` and ``producers`` side by side, never
  importing each other; ``schemas`` (the shared contract) below; nothing imports anything above it;
- the sandbox portal (``ops.sandbox``) shares no code with callq;
- only ``schemas.jobqueue`` imports arq.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_import_keeps_to_the_layers() -> None:
    """import-linter finds every contract of pyproject.toml kept (in its own process: it reconfigures
    logging, which would disable the loggers other tests of this process rely on)."""
    lint = "from importlinter.cli import lint_imports; raise SystemExit(lint_imports(no_cache=True, no_logo=True))"
    done = subprocess.run(
        [sys.executable, "-c", lint], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
