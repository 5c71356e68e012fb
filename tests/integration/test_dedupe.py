"""Dedupe across worker processes: two of them racing on one number never call it twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxHandle
from schemas.store.keys import Keys
from tests.support.helpers import job_json, wait_outcomes
from tests.support.processes import new_worker, write_config


async def test_two_worker_processes_racing_never_call_twice(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle, tmp_path: Path
) -> None:
    """Pairs of entries for one number pushed ms apart to two worker processes give one call each."""
    config = write_config(
        tmp_path / "callq.toml",
        {"default": {"webhook_url": portal.webhook_url("default"), "default_region": "RU"}},
    )
    workers = [
        new_worker(tmp_path, config, redis_url, prefix, f"w{i}", "--concurrency", "10") for i in range(2)
    ]
    pairs = 40
    for w in workers:
        w.start()
    try:
        for n in range(pairs):
            number = f"+7911{n:07d}"
            await redis.xadd(Keys(prefix).intake, {"job": job_json(number)})
            await asyncio.sleep(0.003)  # "a few ms apart", the race the test is about
            await redis.xadd(Keys(prefix).intake, {"job": job_json(number.replace("+7", "8"))})
        outcomes = await wait_outcomes(redis, prefix, 2 * pairs, timeout_s=30)
    finally:
        for w in workers:
            w.stop()
    statuses = sorted(o["status"] for o in outcomes)
    assert statuses == ["duplicate"] * pairs + ["succeeded"] * pairs
    numbers = [c.params["TO_NUMBER"] for c in sandbox.calls()]
    assert len(numbers) == pairs and len(set(numbers)) == pairs
    consumers = await redis.xinfo_consumers(Keys(prefix).intake, "callq")
    assert sum(1 for c in consumers if c["name"]) == 2, "both processes read the intake"
