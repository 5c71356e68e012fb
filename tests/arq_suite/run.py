"""Run the tests of the installed arq release against callq's BatchClaimWorker (``make test-arq``).

arq's tests are not part of this repository (code fetched from elsewhere is never committed). The
sdist of the installed arq version is downloaded from PyPI once (``pip download``) into a cache
(``.venv/arq-suite/`` by default, reused while present); each run extracts its ``tests/`` and its
``pyproject.toml`` (arq's pytest settings: warnings are errors, a 10 s timeout per test) afresh
beside it and runs pytest there, on the installed arq, with ``arq_overlay.py`` (this directory) as a
plugin: callq's worker in place of arq's, a private redis-server in place of arq's Docker one.

Usage: ``python -m tests.arq_suite.run [--worker batched|arq] [--cache DIR] [pytest arguments...]``
(``--worker arq``: arq's own ``Worker``, the baseline).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent

WORKER_ENV = "CALLQ_ARQ_SUITE_WORKER"
"""Read by ``arq_overlay.py``: ``batched`` or ``arq``."""

PLUGINS = ("arq_overlay", "no:cacheprovider", "no:hypothesispytest")
"""callq's changes, and no cache in the sdist's copy; hypothesis is callq's plugin, unused by arq's tests."""

INI_OPTIONS = ("asyncio_default_fixture_loop_scope=function", "timeout_method=thread")
"""arq's settings predate the first option; the second because a hung event loop swallows the
exception of the signal method (the run would never end) where the thread method ends it."""

DESELECTED: dict[str, str] = {}
"""arq test node id -> why it cannot hold for BatchClaimWorker by design (none so far)."""

TIMEOUT_S = 600
"""The whole run at most (arq's settings cut each test at 10 s; this is for anything else)."""


def default_cache() -> Path:
    """``<venv>/arq-suite`` inside a virtualenv, else ``build/arq-suite`` (both git-ignored)."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / "arq-suite"
    return HERE.parent.parent / "build" / "arq-suite"


def sdist(version: str, cache: Path) -> Path:
    """arq's sdist for ``version``: from the cache, else downloaded from PyPI into it."""
    path = cache / f"arq-{version}.tar.gz"
    if path.exists():
        return path
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        pip = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", scratch]
        subprocess.run([*pip, "--no-binary", ":all:", f"arq=={version}"], check=True)
        Path(scratch, path.name).rename(path)  # whole or not at all
    return path


def extract_tests(archive: Path, into: Path) -> Path:
    """A fresh copy of the sdist's ``tests/`` and ``pyproject.toml`` (not its ``arq/``: the installed
    arq is the one under test). Returns the directory holding them."""
    root = into / archive.name.removesuffix(".tar.gz")
    shutil.rmtree(root, ignore_errors=True)
    with tarfile.open(archive) as tar:
        wanted = [
            member
            for member in tar.getmembers()
            if member.name == f"{root.name}/pyproject.toml" or member.name.startswith(f"{root.name}/tests/")
        ]
        tar.extractall(into, members=wanted, filter="data")
    if not (root / "tests" / "conftest.py").exists():
        raise SystemExit(f"{archive.name} holds no tests/conftest.py")
    return root


def pytest_invocation(worker: str, pytest_args: Sequence[str] = ()) -> tuple[list[str], dict[str, str]]:
    """The pytest command and environment that run the tests of the current directory's arq tree
    with the overlay, on ``worker`` (``batched`` or ``arq``)."""
    plugins = [arg for plugin in PLUGINS for arg in ("-p", plugin)]
    ini = [arg for option in INI_OPTIONS for arg in ("-o", option)]
    deselect = [arg for node in DESELECTED for arg in ("--deselect", node)] if worker == "batched" else []
    env = {**os.environ, WORKER_ENV: worker}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    return [sys.executable, "-m", "pytest", *plugins, *ini, *deselect, *pytest_args], env


def main(argv: list[str] | None = None) -> int:
    """Download (once), extract and run arq's tests; pytest's exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--worker", choices=("batched", "arq"), default="batched")
    parser.add_argument("--cache", type=Path, default=None, help="where the sdist is kept")
    args, pytest_args = parser.parse_known_args(argv)
    version = importlib.metadata.version("arq")
    cache = args.cache or default_cache()
    root = extract_tests(sdist(version, cache), cache)
    command, env = pytest_invocation(args.worker, pytest_args)
    worker = "arq's Worker" if args.worker == "arq" else "callq's BatchClaimWorker"
    print(f"arq {version}'s own tests (sdist from PyPI, {root}) on {worker}", flush=True)
    started = time.monotonic()
    # its own session: arq's tests install signal handlers, and a hung run is killed whole
    with subprocess.Popen(command, cwd=root, env=env, start_new_session=True) as process:
        try:
            status = process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            print(f"arq's tests still running after {TIMEOUT_S} s: killed", file=sys.stderr)
            return 1
    print(f"arq's tests took {time.monotonic() - started:.1f} s", flush=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
