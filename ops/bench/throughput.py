"""End-to-end throughput of callq against plain arq, and how it scales with worker processes.

- callq: N jobs in ``{p}:intake`` (spread over 10 portals whose limits are set high, so no bucket
  binds), one or more ``callq`` worker processes; timed from the first outcome to the N-th, so
  start-up is not counted. Everything is included: intake, validation, dedupe, pacing, the HTTP
  call to the sandbox, the outcome.
- headline baseline, "post_tuned": what a performance-minded user would write instead: a plain arq
  worker whose job makes the same aiohttp POST (no dedupe, limit or outcome), tuned as such a user
  would (``poll_delay`` 0.05 s, ``queue_read_limit`` 1,000; same concurrency and JSON serializer as
  callq). Target: callq ≥ 1.0 of it.
- "post_batched": the same plain POST worker on callq's batched claim (:mod:`schemas.jobqueue.worker`):
  what callq's own work (validation, dedupe, pacing, records) costs on the same dispatch.
  Target: callq ≥ 0.75 of it.
- labelled, for comparison with earlier figures: "post" (the same POST worker with arq's
  ``poll_delay`` 0.25 s and default ``queue_read_limit``: bound by its poll loop) and "noop" (bare
  arq no-op jobs, likewise set up).
Each measured ``rounds`` times, alternating, medians reported. CPU seconds of the workers, Redis
and the sandbox over the measured window say what bounds the run; the worker's CPU milliseconds per
job are the figure a machine busy with other work changes least.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from arq.connections import RedisSettings, create_pool
from redis.asyncio import Redis

from ops.bench.common import callback_jobs, push_intake
from ops.bench.harness import Env, bench_env, cpu_seconds, median, start_plain_arq, start_worker, stop
from ops.bench.plain_arq import DONE_SUFFIX, dumps, loads

PORTALS = [f"p{n}" for n in range(10)]
HIGH = (100_000.0, 100_000)
MODES = ("post_tuned", "post_batched", "post", "noop")
"""The baselines: the headline (tuned arq), the same dispatch as callq, then arq as it comes."""


async def run(*, quick: bool) -> dict[str, Any]:
    """Throughput ratios (one worker process) and scaling (1, 2, 4 processes)."""
    n = 300 if quick else 3000
    rounds = 1 if quick else 3
    counter = itertools.count()
    with bench_env(dict.fromkeys(PORTALS, HIGH)) as env:
        redis = Redis.from_url(env.redis_url)
        rates: dict[str, list[float]] = {mode: [] for mode in ("callq", *MODES)}
        cpu_ms: dict[str, list[float]] = {mode: [] for mode in ("callq", *MODES)}
        cpu: dict[str, dict[str, float]] = {}
        for _ in range(rounds):
            rate, cpu["callq"] = await callq_rate(env, redis, f"tp{next(counter)}", n, workers=1)
            rates["callq"].append(rate)
            cpu_ms["callq"].append(cpu["callq"]["workers_cpu_share"] / rate * 1000)
            for mode in MODES:
                rate, cpu[mode] = await arq_rate(env, redis, f"arq{next(counter)}", n, mode=mode)
                rates[mode].append(rate)
                cpu_ms[mode].append(cpu[mode]["workers_cpu_share"] / rate * 1000)
        scale: dict[str, Any] = {}
        for workers in (1, 2) if quick else (1, 2, 4):
            rate, used = await callq_rate(env, redis, f"sc{next(counter)}", n * workers, workers=workers)
            scale[f"{workers}_workers_jobs_per_s"] = round(rate, 1)
            scale[f"{workers}_workers_cpu_s"] = used
        await redis.aclose()
    callq, tuned, batched, post, noop = (median(rates[k]) for k in ("callq", *MODES))
    return {
        "jobs": n,
        "rounds": rounds,
        "callq_jobs_per_s": round(callq, 1),
        "tuned_arq_post_jobs_per_s": round(tuned, 1),
        "ratio_vs_tuned_arq_post": round(callq / tuned, 3),
        "plain_post_batched_jobs_per_s": round(batched, 1),
        "ratio_vs_plain_post_batched": round(callq / batched, 3),
        "default_arq_post_jobs_per_s": round(post, 1),
        "ratio_vs_default_arq_post": round(callq / post, 3),
        "default_arq_noop_jobs_per_s": round(noop, 1),
        "ratio_vs_default_arq_noop": round(callq / noop, 3),
        # the worker's CPU per job: what a machine shared with other work changes least
        "worker_cpu_ms_per_job": {mode: round(median(values), 3) for mode, values in cpu_ms.items()},
        "cpu_s_last_round": cpu,
        "scale": scale,
    }


async def callq_rate(
    env: Env, redis: Redis, prefix: str, n: int, *, workers: int
) -> tuple[float, dict[str, float]]:
    """Jobs/s of ``workers`` callq processes over ``n`` jobs, and CPU seconds used meanwhile."""
    jobs = [
        job for i, p in enumerate(PORTALS) for job in callback_jobs(n // len(PORTALS), portal=p, offset=i * n)
    ]
    await push_intake(redis, prefix, jobs)
    procs = [
        start_worker(env, prefix, portals=PORTALS, rates=dict.fromkeys(PORTALS, HIGH)) for _ in range(workers)
    ]
    outcomes = f"{prefix}:outcomes"
    try:
        first = await _wait(lambda: redis.xlen(outcomes), 1)
        before = _cpu(env, procs)
        last = await _wait(lambda: redis.xlen(outcomes), len(jobs))
        used = _delta(before, _cpu(env, procs))
    finally:
        for proc in procs:
            stop(proc)
    return (len(jobs) - 1) / (last - first), used


async def arq_rate(
    env: Env, redis: Redis, queue: str, n: int, *, mode: str
) -> tuple[float, dict[str, float]]:
    """Jobs/s of one bare arq worker process over ``n`` jobs (one of :data:`MODES`)."""
    pool = await create_pool(
        RedisSettings.from_dsn(env.redis_url),
        job_serializer=dumps,
        job_deserializer=loads,
        default_queue_name=queue,
    )
    for i in range(n):
        portal = PORTALS[i % len(PORTALS)]
        await pool.enqueue_job(
            "job", f"{env.webhook_url(portal)}voximplant.callback.start.json", f"+7911{i:07d}"
        )
    await pool.aclose()
    kind, _, variant = mode.partition("_")
    proc = start_plain_arq(env, queue, mode=kind, batched=variant == "batched", tuned=variant == "tuned")
    done = queue + DONE_SUFFIX

    async def count() -> int:
        return int(await redis.get(done) or 0)

    try:
        first = await _wait(count, 1)
        before = _cpu(env, [proc])
        last = await _wait(count, n)
        used = _delta(before, _cpu(env, [proc]))
    finally:
        stop(proc)
    return (n - 1) / (last - first), used


async def _wait(probe: Any, target: int, timeout_s: float = 600) -> float:
    deadline = time.monotonic() + timeout_s
    while await probe() < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{target} not reached")
        await asyncio.sleep(0.005)
    return time.monotonic()


def _cpu(env: Env, procs: list[Any]) -> dict[str, float]:
    return {
        "workers": sum(cpu_seconds(p.pid) for p in procs),
        "redis": cpu_seconds(env.redis_pid),
        "sandbox": cpu_seconds(env.sandbox_pid),
        "wall": time.monotonic(),
    }


def _delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    wall = after["wall"] - before["wall"]
    return {
        f"{k}_cpu_share": round((after[k] - before[k]) / wall, 2) for k in ("workers", "redis", "sandbox")
    }
