"""Redis memory per job: ``used_memory`` growth per job, in two states.

- scheduled: N jobs scheduled for tomorrow, each with an idempotency key (so the record, the arq
  queue entry, the line + number claim and the key all count; 0.2 wrote an arq job key too). Target ≤ 1 KiB per job.
  Measured with Redis's defaults and with ``hash-max-listpack-value 1024`` (ops/deploy's redis.conf).
- finished: jobs run to ``succeeded`` and kept as the contract says (the record with its outcome
  for ``outcome_retention``, the ``{p}:outcomes`` entry, the claim for ``dedupe_window``, the key),
  measured as soon as the last outcome is out (most calls' follow-ups still await their end: their
  CALL_ID index and schedule entry count too), with Redis's defaults and with redis.conf's; and,
  with Redis's defaults, once every call's end is recorded (its result in the record and its
  ``call_result`` entry on the outcome stream): what stays for ``outcome_retention``, but for the
  claim, which leaves after ``dedupe_window``.

Each state's ``MEMORY USAGE`` by kind of key (:mod:`ops.bench.memory_breakdown`) goes to stderr.
"""

from __future__ import annotations

import json
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from ops.bench.common import callback_jobs, push_intake, wait_outcomes
from ops.bench.harness import Env, bench_env, start_worker, stop
from ops.bench.memory_breakdown import breakdown
from ops.bench.worker_proc import settings_for
from producers.api import Producer
from producers.stream import IntakeConsumer
from schemas.store.keys import Keys

PORTALS = [f"p{n}" for n in range(10)]
HIGH = (100_000.0, 100_000)
CALL_FIRST_POLL_S = 1.0
"""The sandbox's calls end 2 s after they are placed: asked after 1 s, then 2 s, the end is known."""


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
        scheduled_keys = await breakdown(redis, "mem-s", scheduled_n)
        finished_jobs = [
            {**job, "idempotency_key": f"lead-{n}"} for n, job in enumerate(_jobs(finished_n, offset=10**6))
        ]
        # measured from an empty keyspace each time, so that no figure pays for another's share of
        # Redis's key table growing
        await redis.flushall()
        finished_default = await _finish(redis, env, "mem-d", finished_jobs) / finished_n
        finished_default_keys = await breakdown(redis, "mem-d", finished_n)
        await redis.flushall()
        ended = await _finish(redis, env, "mem-e", finished_jobs, call_ended=True) / finished_n
        ended_keys = await breakdown(redis, "mem-e", finished_n)
        # ops/deploy/redis/redis.conf raises this: values over the default 64 (an error's text, a long
        # text_to_pronounce or metadata) would turn a record's hash into a hashtable
        await redis.config_set("hash-max-listpack-value", 1024)
        await redis.flushall()
        before = await _used(redis)
        await _admit(redis, env.redis_url, env.sandbox_url, "mem-l", jobs)
        scheduled = (await _used(redis) - before) / scheduled_n
        assert await redis.zcard(Keys("mem-l").queue) == scheduled_n
        await redis.flushall()
        finished = await _finish(redis, env, "mem-f", finished_jobs) / finished_n
        finished_keys = await breakdown(redis, "mem-f", finished_n)
        await redis.aclose()
    for state, found in (
        ("scheduled (Redis defaults)", scheduled_keys),
        ("finished (Redis defaults)", finished_default_keys),
        ("finished, its call ended (Redis defaults)", ended_keys),
        ("finished (redis.conf)", finished_keys),
    ):
        print(f"memory: a {state} job, MEMORY USAGE by kind of key:", file=sys.stderr)
        print(textwrap.indent(json.dumps(found, indent=1), "  "), file=sys.stderr)
    return {
        "scheduled_jobs": scheduled_n,
        "bytes_per_scheduled_job_redis_defaults": round(scheduled_default),
        "bytes_per_scheduled_job": round(scheduled),
        "finished_jobs": finished_n,
        "bytes_per_finished_job_redis_defaults": round(finished_default),
        "bytes_per_finished_job": round(finished),
        "bytes_per_finished_job_call_ended_redis_defaults": round(ended),
        "scheduled_by_key": _per_job(scheduled_keys),
        "finished_by_key": _per_job(finished_default_keys),
        "call_ended_by_key": _per_job(ended_keys),
    }


async def _finish(
    redis: Redis, env: Env, prefix: str, jobs: list[dict[str, Any]], *, call_ended: bool = False
) -> int:
    """Run ``jobs`` to their outcomes with a worker (``call_ended``: and on until each call's result
    is recorded, asking first 1 s after the call was placed); returns how much ``used_memory`` grew."""
    before = await _used(redis)
    await push_intake(redis, prefix, jobs)
    worker = start_worker(
        env,
        prefix,
        portals=PORTALS,
        rates=dict.fromkeys(PORTALS, HIGH),
        first_poll_s=CALL_FIRST_POLL_S if call_ended else None,
    )
    try:
        await wait_outcomes(redis, prefix, len(jobs), timeout_s=600)
        if call_ended:
            await wait_outcomes(redis, prefix, len(jobs), timeout_s=600, kind="call_result")
    finally:
        stop(worker)
    return await _used(redis) - before


def _per_job(found: dict[str, Any]) -> dict[str, float]:
    return {kind: row["bytes_per_job"] for kind, row in found["keys"].items()}


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
