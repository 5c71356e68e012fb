"""The cost of dedupe + rate limiting: end-to-end jobs/s with them, divided by jobs/s without.

One worker process; N jobs pushed to the intake stream; timed from the first outcome to the N-th
(so the process's start-up is not counted). The sandbox's limit is set high so that the bucket never binds: what is measured
is the bookkeeping (claims, plan and real reservations, held slots), not the waiting.
"""

from __future__ import annotations

import itertools
from typing import Any

from redis.asyncio import Redis

from ops.bench.common import callback_jobs, push_intake, wait_outcomes
from ops.bench.harness import bench_env, median, start_worker, stop


async def run(*, quick: bool) -> dict[str, Any]:
    """Measure; returns the figures."""
    n = 300 if quick else 3000
    rounds = 1 if quick else 3
    with bench_env({"default": (100_000.0, 100_000)}) as env:
        redis = Redis.from_url(env.redis_url)
        rates: dict[str, list[float]] = {"with": [], "without": []}
        counter = itertools.count()
        for _ in range(rounds):
            for mode in ("with", "without"):
                prefix = f"bench-dedupe-{next(counter)}"
                await push_intake(redis, prefix, callback_jobs(n))
                worker = start_worker(
                    env,
                    prefix,
                    portals=["default"],
                    limits=mode == "with",
                    rates={"default": (100_000.0, 100_000)},
                )
                try:
                    started = await wait_outcomes(redis, prefix, 1, timeout_s=60)
                    done = await wait_outcomes(redis, prefix, n, timeout_s=300)
                finally:
                    stop(worker)
                rates[mode].append((n - 1) / (done - started))
        await redis.aclose()
    with_, without = median(rates["with"]), median(rates["without"])
    return {
        "jobs": n,
        "rounds": rounds,
        "jobs_per_s_with": with_,
        "jobs_per_s_without": without,
        "ratio": with_ / without,
    }
