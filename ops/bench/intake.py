"""Intake throughput: entries from ``{p}:intake`` to stored arq jobs by one process, divided by a
loop of sequential ``ArqRedis.enqueue_job`` calls in the same run (target ≥ 1.0).

Both run in this process against a private Redis: callq's consumer reads batches, validates each
entry (JSON, schema, number, calendar), dedupes and stores it (record, claim, arq job) in one Lua
step; the baseline only writes arq jobs, with nothing checked.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis

from ops.bench.common import callback_jobs, push_intake
from ops.bench.harness import bench_env, median
from ops.bench.plain_arq import dumps, loads
from ops.bench.worker_proc import settings_for
from producers.api import Producer
from producers.stream import IntakeConsumer
from schemas.store.connect import redis_client
from schemas.store.keys import Keys

PORTALS = [f"p{n}" for n in range(10)]


async def run(*, quick: bool) -> dict[str, Any]:
    """Measure; returns the figures."""
    n = 500 if quick else 10_000
    rounds = 1 if quick else 3
    rates: dict[str, list[float]] = {"callq": [], "enqueue_job": []}
    counter = itertools.count()
    with bench_env({}) as env:
        redis = redis_client(env.redis_url)  # as callq's processes make theirs
        for _ in range(rounds):
            rates["callq"].append(
                await callq_intake(env.redis_url, env.sandbox_url, redis, f"in{next(counter)}", n)
            )
            rates["enqueue_job"].append(await enqueue_loop(env.redis_url, f"eq{next(counter)}", n))
        await redis.aclose()
    callq, baseline = median(rates["callq"]), median(rates["enqueue_job"])
    return {
        "entries": n,
        "rounds": rounds,
        "callq_entries_per_s": round(callq, 1),
        "enqueue_job_loop_per_s": round(baseline, 1),
        "ratio": round(callq / baseline, 3),
    }


async def callq_intake(redis_url: str, sandbox_url: str, redis: Redis, prefix: str, n: int) -> float:
    """Entries/s admitted by one IntakeConsumer."""
    jobs = [
        j for i, p in enumerate(PORTALS) for j in callback_jobs(n // len(PORTALS), portal=p, offset=i * n)
    ]
    await push_intake(redis, prefix, jobs)
    settings = settings_for(redis_url, prefix, sandbox_url, dict.fromkeys(PORTALS, (2.0, 50)))
    consumer = IntakeConsumer(
        redis, producer=Producer(redis, settings=settings), keys=Keys(prefix), batch=500, block_ms=10
    )
    await consumer.ensure_group()
    started = time.monotonic()
    while consumer.processed < len(jobs):
        await consumer.step()
    elapsed = time.monotonic() - started
    assert await redis.zcard(Keys(prefix).queue) == len(jobs), "every entry became an arq job"
    return len(jobs) / elapsed


async def enqueue_loop(redis_url: str, queue: str, n: int) -> float:
    """Jobs/s of sequential ``enqueue_job`` calls (what a producer using arq directly does)."""
    pool = await create_pool(
        RedisSettings.from_dsn(redis_url),
        job_serializer=dumps,
        job_deserializer=loads,
        default_queue_name=queue,
    )
    started = time.monotonic()
    for i in range(n):
        await pool.enqueue_job(
            "job", "https://portal/rest/1/x/voximplant.callback.start.json", f"+7911{i:07d}"
        )
    elapsed = time.monotonic() - started
    await pool.aclose()
    return n / elapsed
