"""Small async helpers shared by the benchmarks: enqueue through the intake, count outcomes, read calls."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
from arq.worker import Worker
from redis.asyncio import Redis

from schemas.store.keys import Keys


async def push_intake(redis: Redis, prefix: str, jobs: list[dict[str, Any]], *, batch: int = 500) -> None:
    """XADD every job to ``{p}:intake``, pipelined."""
    intake = Keys(prefix).intake
    for start in range(0, len(jobs), batch):
        async with redis.pipeline(transaction=False) as pipe:
            for job in jobs[start : start + batch]:
                pipe.xadd(intake, {"job": json.dumps(job)})
            await pipe.execute()


async def wait_outcomes(
    redis: Redis, prefix: str, count: int, *, timeout_s: float, kind: str = "outcome"
) -> float:
    """Wait until ``count`` entries of ``kind`` are on the outcome stream (``outcome``: the jobs' final
    outcomes, skipping ``kind call_result`` entries as a counting reader must; ``call_result``: only
    those); returns the monotonic time it happened. Reads the stream once, incrementally."""
    key = Keys(prefix).outcomes
    deadline = time.monotonic() + timeout_s
    seen, last = 0, "-"
    while True:
        entries = await redis.xrange(key, min=last, count=5000)
        for entry_id, fields in entries:
            if entry_id == last.encode():
                continue
            is_call = fields.get(b"kind") == b"call_result"
            seen += is_call if kind == "call_result" else not is_call
        if entries:
            last = entries[-1][0].decode()
        if seen >= count:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {seen} of {count} {kind} entries after {timeout_s}s")
        if len(entries) < 5000:
            await asyncio.sleep(0.02)


async def sandbox_calls(sandbox_url: str, portal: str | None = None) -> list[dict[str, Any]]:
    """The sandbox's record of callback.start requests."""
    query = f"?portal={portal}" if portal else ""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{sandbox_url}/_sandbox/calls{query}") as resp,
    ):
        return list(await resp.json())


def callback_jobs(count: int, *, portal: str = "default", offset: int = 0) -> list[dict[str, Any]]:
    """``count`` valid jobs with distinct numbers."""
    return [
        {
            "portal": portal,
            "from_line": "reg1332",
            "to_number": f"+7911{offset + n:07d}",
            "text_to_pronounce": "Hi",
        }
        for n in range(count)
    ]


async def run_until_stopped(worker: Worker) -> None:
    """Run an arq worker until a signal stops it (arq's handlers cancel ``main_task``), then close it."""
    worker.main_task = asyncio.create_task(worker.main())
    try:
        await worker.main_task
    except asyncio.CancelledError:
        pass
    finally:
        await worker.close()
