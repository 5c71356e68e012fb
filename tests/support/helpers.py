"""Test helpers: settings for a sandbox portal, a worker running in a task, jobs, reading outcomes."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from redis.asyncio import Redis

from ops.cli.assemble import build_callq_worker
from ops.sandbox import Sandbox
from producers.api import Producer, Submitted
from producers.http.app import serve
from producers.http.server import DEFAULT_TIMEOUTS, ConnectionTimeouts
from schemas.config import PortalConfig, Settings
from schemas.jobqueue.pool import open_pool
from schemas.store.keys import Keys
from worker.service.app import BuiltWorker, WorkerOptions

TEXT = "Callback request"
"""The text of the test jobs."""

FULL_JOB = {
    "from_line": "reg1332",
    "to_number": "8 (911) 123-45-67",
    "text_to_pronounce": "Callback request from the website, connecting you.",
    "voice": "usenglishfemale",
    "idempotency_key": "lead-4711",
    "metadata": {"lead": 4711, "form": "contact"},
}
"""A job with every field a producer usually sends, its number written as a person would."""

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


class FakeClock:
    """A monotonic clock that moves only when a test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


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
    """Every final outcome on the prefix's outcome stream, oldest first, one per job: a reader that
    counts entries skips ``kind call_result`` (the call's end, which repeats its job's outcome)."""
    entries = await redis.xrange(Keys(prefix).outcomes)
    return [
        json.loads(fields[b"outcome"]) for _id, fields in entries if fields.get(b"kind") != b"call_result"
    ]


async def read_call_results(redis: Any, prefix: str) -> list[dict[str, Any]]:
    """Every call result (``kind call_result``) on the prefix's outcome stream, oldest first."""
    entries = await redis.xrange(Keys(prefix).outcomes)
    return [
        json.loads(fields[b"call_result"]) for _id, fields in entries if fields.get(b"kind") == b"call_result"
    ]


async def wait_for(
    probe: Callable[[], Any], *, timeout_s: float = 10.0, poll_s: float = 0.02, what: str = "condition"
) -> Any:
    """Call ``probe()`` (and await what it returns, if it is awaitable) until it gives something truthy;
    fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}; last value: {value!r}")
        await asyncio.sleep(poll_s)


async def wait_outcomes(
    redis: Any, prefix: str, count: int, *, timeout_s: float = 10.0, poll_s: float = 0.02
) -> list[dict[str, Any]]:
    """Wait until the outcome stream holds at least ``count`` outcomes (XLEN, cheap); return them all."""

    async def probe() -> bool:
        return int(await redis.xlen(Keys(prefix).outcomes)) >= count

    await wait_for(probe, timeout_s=timeout_s, poll_s=poll_s, what=f"{count} outcomes")
    return await read_outcomes(redis, prefix)


def job_json(number: str, **extra: Any) -> str:
    """A valid intake job for ``number`` on line reg1332 (``extra`` fields added)."""
    return json.dumps({"from_line": "reg1332", "to_number": number, "text_to_pronounce": TEXT, **extra})


def called_numbers(sandbox: Sandbox, *, executed_only: bool = False) -> list[str]:
    """TO_NUMBER of every callback.start request the sandbox recorded, in order."""
    return [str(c.params["TO_NUMBER"]) for c in sandbox.calls(executed_only=executed_only)]


async def same_key_on_both(producer: Producer, key: str = "lead-X") -> dict[str, Submitted]:
    """A job under ``key`` on portals acme and beta, both due tomorrow."""
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    jobs = {}
    for portal in ("acme", "beta"):
        jobs[portal] = await producer.enqueue(
            portal=portal,
            from_line="reg1332",
            to_number="+79111234567",
            text_to_pronounce="Hi",
            idempotency_key=key,
            not_before=later,
        )
    return jobs


@contextlib.asynccontextmanager
async def serve_on_free_port(
    redis: Redis, settings: Settings, timeouts: ConnectionTimeouts = DEFAULT_TIMEOUTS
) -> AsyncIterator[tuple[str, int]]:
    """``callq serve``'s server (:func:`producers.http.app.serve`, the protocol and not only the app) in a
    task, on a free loopback port, until the block ends; yields (host, port)."""
    stop, ready = asyncio.Event(), asyncio.Queue[Sequence[str]]()
    task = asyncio.create_task(
        serve(
            redis=redis,
            settings=settings,
            host="127.0.0.1",
            port=0,
            on_ready=ready.put_nowait,
            stop=stop,
            timeouts=timeouts,
        )
    )
    (url,) = await asyncio.wait_for(ready.get(), 5)
    host, _, port = url.removeprefix("http://").rpartition(":")
    try:
        yield host, int(port)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
