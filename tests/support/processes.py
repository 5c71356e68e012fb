"""Real callq processes, for the tests under ``tests/integration/``: ``callq worker`` processes (several,
or one to kill), one-shot ``callq`` commands, the environment and config file they read."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import aiohttp

from tests.support.helpers import wait_for

NEUTRAL_CWD = tempfile.gettempdir()
"""Where callq subprocesses start: no callq.toml there, and not tests/ (whose `worker` package is the
tests', not callq's)."""

SHORT_TIMEOUTS = ("--request-timeout", "1", "--lease", "3")
"""A job held by a killed worker is taken over about 3 s after its last heartbeat, once the worker
that takes it over has been healthy for 8 s (the grace after its own start)."""

ALWAYS_OPEN_TOML = "\n".join(
    f'{day} = "00:00-24:00"' for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
)


def write_config(path: Path, portals: dict[str, dict[str, Any]]) -> Path:
    """Write a callq.toml with the given portals (in UTC and open around the clock unless ``timezone`` or
    ``hours`` is given)."""
    lines: list[str] = []
    for name, fields in portals.items():
        lines.append(f"[portals.{name}]")
        fields = {"timezone": "UTC", **fields}  # a portal's zone is required; open all day it changes nothing
        tables = ("hours", "lines", "oauth", "calls")
        lines.extend(f"{key} = {_toml(value)}" for key, value in fields.items() if key not in tables)
        for table in ("oauth", "calls"):
            if table in fields:
                lines.append(f"[portals.{name}.{table}]")
                lines.extend(f"{key} = {_toml(value)}" for key, value in fields[table].items())
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
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
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
        self.env = callq_env(CALLQ_CONFIG=str(config), CALLQ_REDIS_URL=redis_url, CALLQ_KEY_PREFIX=prefix)
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


def new_worker(
    tmp_path: Path, config: Path, redis_url: str, prefix: str, name: str, *extra: str
) -> WorkerProcess:
    """A worker process logging to ``tmp_path/<name>.log`` (not started)."""
    return WorkerProcess(
        config=config, redis_url=redis_url, prefix=prefix, log_path=tmp_path / f"{name}.log", extra_args=extra
    )


async def until_logged(worker: WorkerProcess, event: str, *, timeout_s: float = 20) -> None:
    """Wait until the worker has logged ``event``."""

    async def probe() -> bool:
        return f'"event": "{event}"' in worker.log_text()

    await wait_for(probe, timeout_s=timeout_s, poll_s=0.02, what=f"{worker.log_path.name}: {event}")


async def exit_code(worker: WorkerProcess, *, timeout_s: float) -> int:
    """Wait (without blocking the sandbox's event loop) until the process exits; its exit code."""
    process = worker.process
    assert process is not None

    async def probe() -> bool:
        return process.poll() is not None

    await wait_for(probe, timeout_s=timeout_s, poll_s=0.02, what=f"{worker.log_path.name} to exit")
    return process.returncode


async def stop_all(*workers: WorkerProcess, timeout_s: float = 15) -> None:
    """SIGTERM every running worker, then SIGKILL what is left after ``timeout_s``.

    Waits asynchronously: the sandbox runs in this event loop and must answer requests in flight.
    """
    running = [w for w in workers if w.process is not None and w.process.poll() is None]
    for w in running:
        w.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(w.process is not None and w.process.poll() is None for w in running):
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    for w in running:
        w.kill()


def callq_env(**variables: str) -> dict[str, str]:
    """The environment of a callq process: this one's without CALLQ_*, plus ``variables``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQ_")}
    env.update(variables)
    return env


def cli_env(redis_url: str, prefix: str, webhook_url: str) -> dict[str, str]:
    """Environment for a `callq` subprocess against this test's prefix and the sandbox.

    The portal comes from a config file open around the clock: with CALLQ_WEBHOOK_URL alone it
    would have the default hours (09:00-21:00 UTC), and the tests would depend on the time of day.
    """
    config = write_config(
        Path(tempfile.mkdtemp(prefix="callq-test-")) / "callq.toml", {"default": {"webhook_url": webhook_url}}
    )
    return callq_env(CALLQ_REDIS_URL=redis_url, CALLQ_KEY_PREFIX=prefix, CALLQ_CONFIG=str(config))


async def run_callq(args: list[str], env: dict[str, str], *, timeout_s: float = 30) -> tuple[int, str, str]:
    """Run the `callq` command in a subprocess without blocking the loop (an in-process sandbox keeps serving)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ops.cli",
        *args,
        env=env,
        cwd=NEUTRAL_CWD,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=timeout_s)
    return proc.returncode or 0, out.decode(), err.decode()


async def callq_json(args: list[str], env: dict[str, str]) -> Any:
    """Run ``callq ARGS`` and read what it printed as JSON."""
    _code, out, _err = await run_callq(args, env)
    return json.loads(out)


@dataclass
class Served:
    """A ``callq serve`` process started by :func:`serve_process`.

    Attributes:
        base: its URL, ``http://127.0.0.1:PORT``.
        process: the process.
        out: what it printed on stdout, once the block has ended.
        err: what it printed on stderr (its log), once the block has ended.
    """

    base: str
    process: asyncio.subprocess.Process
    out: bytes = b""
    err: bytes = b""


@contextlib.asynccontextmanager
async def serve_process(
    port: int, env: dict[str, str], *, log_level: str | None = None
) -> AsyncIterator[Served]:
    """``callq --log-format json serve --port PORT`` in its own process until the block ends (SIGTERM).

    The block starts once it answers ``GET /healthz``; after the block its output is in the :class:`Served`.
    """
    levels = ["--log-level", log_level] if log_level else []
    args = ["-m", "ops.cli", "--log-format", "json", *levels, "serve", "--port", str(port)]
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, env=env, cwd=NEUTRAL_CWD, stdout=pipe, stderr=pipe
    )
    served = Served(base=f"http://127.0.0.1:{port}", process=proc)
    try:
        async with aiohttp.ClientSession() as session:

            async def up() -> bool:
                try:
                    async with session.get(f"{served.base}/healthz") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_for(up, timeout_s=20, what="callq serve to listen")
        yield served
    finally:
        proc.send_signal(signal.SIGTERM)
        served.out, served.err = await asyncio.wait_for(proc.communicate(), timeout=20)
