"""Redis memory per job: ``used_memory`` growth per job, in two states.

- scheduled: N jobs scheduled for tomorrow, each with an idempotency key (so the record, the arq
  queue entry, the line + number claim and the key all count; 0.2 wrote an arq job key too). Target ≤ 1 KiB per job.
  Measured with Redis's defaults and with ``hash-max-listpack-value 1024`` (ops/deploy's redis.conf).
- finished: jobs run to ``succeeded`` and kept as the contract says (the record with its outcome
  for ``outcome_retention``, the ``{p}:outcomes`` entry, the claim for ``dedupe_window``, the key).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from ops.bench.common import callback_jobs, push_intake, wait_outcomes
from ops.bench.harness import bench_env, start_worker, stop
from ops.bench.worker_proc import settings_for
from producers.api import Producer
from producers.stream import IntakeConsumer
from schemas.store.keys import Keys

PORTALS = [f"p{n}" for n in range(10)]
HIGH = (100_000.0, 100_000)


async def run(*, quick: bool) -> dict[str, Any]:
    """Measure; returns the figures."""
    scheduled_n = 5_000 if quick else 100_000
    finished_n = 1_000 if quick else 10_000
    with bench_env(dict.fromkeys(PORTALS, HIGH)) as env:
        redis = Redis.from_url(env.redis_url)
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        jobs = [
            {**job, "not_before": tomorrow, "idempotency_key": f"lead-{n}"}
            for n, job in enumerate(_jobs(scheduled_n))
        ]
        before = await _used(redis)
        await _admit(redis, env.redis_url, env.sandbox_url, "mem-s", jobs)
        scheduled_default = (await _used(redis) - before) / scheduled_n
        assert await redis.zcard(Keys("mem-s").queue) == scheduled_n
        # ops/deploy/redis/redis.conf raises this: a finished record's outcome and attempt entries are
        # over the default 64, which turns its hash into a hashtable (a waiting one's job fields are not)
        await redis.config_set("hash-max-listpack-value", 1024)
        # measured from an empty keyspace too, so that neither figure pays for the other's share of
        # Redis's key table growing
        await redis.flushall()
        before = await _used(redis)
        await _admit(redis, env.redis_url, env.sandbox_url, "mem-l", jobs)
        scheduled = (await _used(redis) - before) / scheduled_n
        assert await redis.zcard(Keys("mem-l").queue) == scheduled_n
        jobs = [
            {**job, "idempotency_key": f"lead-{n}"} for n, job in enumerate(_jobs(finished_n, offset=10**6))
        ]
        before = await _used(redis)
        await push_intake(redis, "mem-f", jobs)
        worker = start_worker(env, "mem-f", portals=PORTALS, rates=dict.fromkeys(PORTALS, HIGH))
        try:
            await wait_outcomes(redis, "mem-f", finished_n, timeout_s=600)
        finally:
            stop(worker)
        finished = (await _used(redis) - before) / finished_n
        await redis.aclose()
    return {
        "scheduled_jobs": scheduled_n,
        "bytes_per_scheduled_job_redis_defaults": round(scheduled_default),
        "bytes_per_scheduled_job": round(scheduled),
        "finished_jobs": finished_n,
        "bytes_per_finished_job": round(finished),
    }


def _jobs(n: int, offset: int = 0) -> list[dict[str, Any]]:
    return [
        j
        for i, p in enumerate(PORTALS)
        for j in callback_jobs(n // len(PORTALS), portal=p, offset=offset + i * n)
    ]


async def _admit(
    redis: Redis, redis_url: str, sandbox_url: str, prefix: str, jobs: list[dict[str, Any]]
) -> None:
    await push_intake(redis, prefix, jobs)
    settings = settings_for(redis_url, prefix, sandbox_url, dict.fromkeys(PORTALS, HIGH))
    consumer = IntakeConsumer(
        redis, producer=Producer(redis, settings=settings), keys=Keys(prefix), batch=1000, block_ms=10
    )
    await consumer.ensure_group()
    while consumer.processed < len(jobs):
        await consumer.step()


async def _used(redis: Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])
