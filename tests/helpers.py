"""Test helpers: settings for a sandbox portal, a worker running in a task, reading outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Mapping
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp

from ops.cli.assemble import build_callq_worker
from schemas.config import PortalConfig, Settings
from schemas.jobqueue.pool import open_pool
from schemas.store.keys import Keys
from worker.service.app import BuiltWorker, WorkerOptions

NEUTRAL_CWD = tempfile.gettempdir()
"""Where callq subprocesses start: no callq.toml there, and not tests/ (whose `worker` package is the
tests', not callq's)."""

ALWAYS_OPEN = MappingProxyType({day: ((0, 1440),) for day in range(7)})

FAST = WorkerOptions(
    concurrency=10,
    poll_delay_s=0.05,
    handle_signals=False,
    shutdown_wait_s=0,
    intake_block_ms=50,
    retry_base_s=0.05,
    pause_s=0.2,
    client_timeout=aiohttp.ClientTimeout(total=3, connect=1, sock_connect=1, sock_read=3),
)


def make_settings(
    redis_url: str, prefix: str, portals: Mapping[str, PortalConfig] | None = None, **changes: Any
) -> Settings:
    """Settings for tests: the given portals under this test's prefix."""
    return Settings(
        redis_url=redis_url,
        key_prefix=prefix,
        portals=MappingProxyType(dict(portals or {})),
        **changes,
    )


def sandbox_portal(webhook_url: str, name: str = "default", **changes: Any) -> PortalConfig:
    """A portal pointing at the sandbox, open around the clock unless ``hours`` is given."""
    fields: dict[str, Any] = {
        "name": name,
        "webhook_url": webhook_url,
        "oauth": None,
        "timezone": ZoneInfo("UTC"),
        "default_region": "RU",
        "hours": ALWAYS_OPEN,
    }
    fields.update(changes)
    return PortalConfig(**fields)


@contextlib.asynccontextmanager
async def running_worker(settings: Settings, options: WorkerOptions = FAST) -> AsyncIterator[BuiltWorker]:
    """A worker (with intake) running in a task until the block ends."""
    pool = await open_pool(settings.redis_url, Keys(settings.key_prefix).jobs)
    worker = build_callq_worker(settings, pool, options)
    task = asyncio.create_task(worker.queue.run())
    try:
        yield worker
    finally:
        # stop taking work and let jobs in flight end, as a graceful stop does: the queue's close()
        # re-raises the CancelledError of a job it had to cut off
        worker.queue.stop_taking_jobs()
        worker.callbacks.stop_services()
        in_flight = list(worker.queue.jobs_in_flight().values())
        if in_flight:
            await asyncio.wait(in_flight, timeout=10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(asyncio.CancelledError):
            await worker.queue.close()


async def read_outcomes(redis: Any, prefix: str) -> list[dict[str, Any]]:
    """Every outcome on the prefix's outcome stream, oldest first."""
    entries = await redis.xrange(Keys(prefix).outcomes)
    return [json.loads(fields[b"outcome"]) for _id, fields in entries]


async def wait_for(
    probe: Callable[[], Any], *, timeout_s: float = 10.0, poll_s: float = 0.02, what: str = "condition"
) -> Any:
    """Await ``probe()`` until it returns something truthy; fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last value: {value!r}")
        await asyncio.sleep(poll_s)


async def wait_outcomes(
    redis: Any, prefix: str, count: int, *, timeout_s: float = 10.0
) -> list[dict[str, Any]]:
    """Wait until the outcome stream holds at least ``count`` outcomes; return them all."""

    async def probe() -> list[dict[str, Any]] | None:
        found = await read_outcomes(redis, prefix)
        return found if len(found) >= count else None

    return list(await wait_for(probe, timeout_s=timeout_s, what=f"{count} outcomes"))


async def run_callq(args: list[str], env: dict[str, str], *, timeout_s: float = 30) -> tuple[int, str, str]:
    """Run the `callq` command in a subprocess without blocking the loop (an in-process sandbox keeps serving)."""
    import sys

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
