"""What every benchmark needs: a private Redis, a sandbox portal process, worker processes."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ops.cli.event_loop import DEFAULT_EVENT_LOOP, EventLoopName
from ops.redis_server import RedisServer


@dataclass(frozen=True)
class Env:
    """A private Redis and sandbox for one benchmark."""

    redis_url: str
    sandbox_url: str
    workdir: Path
    redis_pid: int = 0
    sandbox_pid: int = 0

    def webhook_url(self, portal: str = "default") -> str:
        """The webhook of a sandbox portal (code = portal name)."""
        return f"{self.sandbox_url}/rest/1/{portal}/"


@contextlib.contextmanager
def bench_env(portals: dict[str, tuple[float, int]]) -> Iterator[Env]:
    """Start ``redis-server`` and a sandbox process with ``portals`` (name → (rate, burst))."""
    with tempfile.TemporaryDirectory(prefix="callq-bench-") as tmp:
        workdir = Path(tmp)
        with RedisServer(workdir) as redis:
            specs = [f"--portal={name}:1:{name}:{rate}:{burst}" for name, (rate, burst) in portals.items()]
            sandbox = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "ops.cli",
                    "sandbox",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    "0",
                    "--print-url",
                    "--quiet",
                    *specs,
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
            )
            try:
                assert sandbox.stdout is not None
                line = sandbox.stdout.readline().strip()
                assert line.startswith("SANDBOX_URL="), line
                yield Env(
                    redis_url=redis.url,
                    sandbox_url=line.removeprefix("SANDBOX_URL="),
                    workdir=workdir,
                    redis_pid=redis.process.pid if redis.process else 0,
                    sandbox_pid=sandbox.pid,
                )
            finally:
                sandbox.send_signal(signal.SIGTERM)
                sandbox.wait(timeout=10)


def start_worker(
    env: Env,
    prefix: str,
    *,
    portals: list[str],
    limits: bool = True,
    concurrency: int = 20,
    rates: dict[str, tuple[float, int]] | None = None,
    follow: bool = True,
    first_poll_s: float | None = None,
    event_loop: EventLoopName = DEFAULT_EVENT_LOOP,
) -> subprocess.Popen[bytes]:
    """Start ``python -m ops.bench.worker_proc`` (a callq worker built from arguments; ``follow``:
    follow each call to its end, first asking ``first_poll_s`` after it was placed)."""
    args = [
        sys.executable,
        "-m",
        "ops.bench.worker_proc",
        "--redis-url",
        env.redis_url,
        "--prefix",
        prefix,
        "--sandbox-url",
        env.sandbox_url,
        "--concurrency",
        str(concurrency),
    ]
    for name in portals:
        rate, burst = (rates or {}).get(name, (10_000.0, 10_000))
        args += ["--portal", f"{name}:{rate}:{burst}"]
    if not limits:
        args.append("--no-limits")
    args += ["--follow", "on" if follow else "off"]
    if first_poll_s is not None:
        args += ["--first-poll", str(first_poll_s)]
    args += ["--event-loop", event_loop]
    log = (env.workdir / f"worker-{prefix}-{len(list(env.workdir.glob('worker-*')))}.log").open("ab")
    return subprocess.Popen(args, stdout=log, stderr=log, env={**os.environ})


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM and wait."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def median(values: list[float]) -> float:
    """The median, or nan for none."""
    return statistics.median(values) if values else float("nan")


def start_plain_arq(
    env: Env,
    queue: str,
    *,
    mode: str,
    concurrency: int = 20,
    batched: bool = False,
    tuned: bool = False,
    event_loop: EventLoopName = DEFAULT_EVENT_LOOP,
) -> subprocess.Popen[bytes]:
    """Start a bare arq worker (:mod:`ops.bench.plain_arq`) on ``queue``, on the event loop callq's
    processes use unless told otherwise."""
    log = (env.workdir / f"arq-{queue}.log").open("ab")
    args = (
        [
            sys.executable,
            "-m",
            "ops.bench.plain_arq",
            "--redis-url",
            env.redis_url,
            "--queue",
            queue,
            "--mode",
            mode,
            "--concurrency",
            str(concurrency),
        ]
        + (["--batched"] if batched else [])
        + (["--tuned"] if tuned else [])
        + ["--event-loop", event_loop]
    )
    return subprocess.Popen(args, stdout=log, stderr=log)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks
