"""Real ``callq worker`` processes for tests that need several workers or kill one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from tests.helpers import NEUTRAL_CWD

ALWAYS_OPEN_TOML = "\n".join(
    f'{day} = "00:00-24:00"' for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
)


def write_config(path: Path, portals: dict[str, dict[str, Any]]) -> Path:
    """Write a callq.toml with the given portals (in UTC and open around the clock unless ``timezone`` or
    ``hours`` is given)."""
    lines: list[str] = []
    for name, fields in portals.items():
        lines.append(f"[portals.{name}]")
        fields = {
            "timezone": "UTC",
            **fields,
        }  # a portal's zone is required; open around the clock it changes nothing
        tables = ("hours", "lines", "oauth")
        lines.extend(f"{key} = {_toml(value)}" for key, value in fields.items() if key not in tables)
        if "oauth" in fields:
            lines.append(f"[portals.{name}.oauth]")
            lines.extend(f"{key} = {_toml(value)}" for key, value in fields["oauth"].items())
        lines.append(f"[portals.{name}.hours]")
        lines.append(fields.get("hours", ALWAYS_OPEN_TOML))
        for line_id, line in fields.get("lines", {}).items():
            lines.append(f"[portals.{name}.lines.{line_id}]")
            lines.extend(f"{key} = {_toml(value)}" for key, value in line.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class WorkerProcess:
    """``python -m ops.cli worker`` in its own process, logs to a file.

    Args:
        config: the TOML file.
        redis_url: Redis.
        prefix: key prefix.
        log_path: where its stderr goes.
        extra_args: more ``worker`` arguments.
        log_level: ``--log-level``.
    """

    def __init__(
        self,
        *,
        config: Path,
        redis_url: str,
        prefix: str,
        log_path: Path,
        extra_args: tuple[str, ...] = (),
        log_level: str = "INFO",
    ):
        options = ["--log-format", "json", "--log-level", log_level]
        self.args = [sys.executable, "-m", "ops.cli", *options, "worker", *extra_args]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQ_")}
        self.env.update(CALLQ_CONFIG=str(config), CALLQ_REDIS_URL=redis_url, CALLQ_KEY_PREFIX=prefix)
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the process (it is ready once it logs worker.started)."""
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.args, env=self.env, stdout=log, stderr=log, cwd=NEUTRAL_CWD)

    def signal(self, signum: int) -> None:
        """Send a signal."""
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: no clean-up of any kind, like a machine dying."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self, *, timeout_s: float = 40) -> int | None:
        """SIGTERM and wait; returns the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log_text(self) -> str:
        """What it logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
