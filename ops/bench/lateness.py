"""Lateness: N jobs become due over a 10 s window; the delay from each job's due time to the moment
its request reaches the portal, p50 and p99 (target p99 ≤ 1 s).

The jobs are scheduled ahead (``not_before`` spread evenly over the window, 10 portals with high
limits so no bucket binds), the worker processes are already running when the window opens, and
the sandbox records when each request arrives.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from ops.bench.common import callback_jobs, push_intake, sandbox_calls, wait_outcomes
from ops.bench.harness import bench_env, start_worker, stop

PORTALS = [f"p{n}" for n in range(10)]
HIGH = (100_000.0, 100_000)
WINDOW_S = 10.0


async def run(*, quick: bool) -> dict[str, Any]:
    """Measure; returns the figures."""
    n = 500 if quick else 5_000
    workers_n = 2
    with bench_env(dict.fromkeys(PORTALS, HIGH)) as env:
        redis = Redis.from_url(env.redis_url)
        start = datetime.now(UTC) + timedelta(seconds=8)
        due: dict[str, float] = {}
        jobs = []
        for k, job in enumerate(
            j for i, p in enumerate(PORTALS) for j in callback_jobs(n // len(PORTALS), portal=p, offset=i * n)
        ):
            at = start + timedelta(seconds=WINDOW_S * k / n)
            due[job["to_number"]] = at.timestamp()
            jobs.append({**job, "not_before": at.isoformat()})
        await push_intake(redis, "late", jobs)
        procs = [
            start_worker(env, "late", portals=PORTALS, rates=dict.fromkeys(PORTALS, HIGH))
            for _ in range(workers_n)
        ]
        try:
            await asyncio.sleep(max(start.timestamp() - time.time(), 0))
            await wait_outcomes(redis, "late", n, timeout_s=300)
        finally:
            for proc in procs:
                stop(proc)
        calls = await sandbox_calls(env.sandbox_url)
        await redis.aclose()
    delays = sorted(c["received_wall"] - due[c["params"]["TO_NUMBER"]] for c in calls)
    early = sum(1 for d in delays if d < 0)
    return {
        "jobs": n,
        "window_s": WINDOW_S,
        "workers": workers_n,
        "p50_s": round(statistics.median(delays), 3),
        "p99_s": round(delays[int(len(delays) * 0.99) - 1], 3),
        "max_s": round(delays[-1], 3),
        "called_before_due": early,
    }
