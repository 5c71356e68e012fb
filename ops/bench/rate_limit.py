"""Rate-limit utilisation: 4 worker processes on one portal; achieved rate / configured rate.

Baseline is the configured rate itself (the most the portal allows); the figure to watch is the
ratio (target ≥ 0.95) and the count of over-limit answers (target 0). The sandbox enforces the
same bucket, so an over-limit request shows up as a real 503.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import Redis

from ops.bench.common import callback_jobs, push_intake, sandbox_calls
from ops.bench.harness import bench_env, start_worker, stop

RATE = 10.0
BURST = 20


async def run(*, quick: bool) -> dict[str, Any]:
    """Measure; returns the figures."""
    duration_s = 5.0 if quick else 60.0
    workers_n = 2 if quick else 4
    jobs = int(RATE * duration_s * 1.3) + BURST
    with bench_env({"default": (RATE, BURST)}) as env:
        redis = Redis.from_url(env.redis_url)
        prefix = "bench-rate"
        await push_intake(redis, prefix, callback_jobs(jobs))
        rates = {"default": (RATE, BURST)}
        workers = [start_worker(env, prefix, portals=["default"], rates=rates) for _ in range(workers_n)]
        try:
            first = await _first_call(env.sandbox_url)
            await asyncio.sleep(max(duration_s - (time.time() - first), 0))
        finally:
            for w in workers:
                stop(w)
        calls = await sandbox_calls(env.sandbox_url)
        await redis.aclose()
    window = [c for c in calls if c["received_wall"] <= first + duration_s]
    ok = [c for c in window if c["status"] == 200]
    refused = [c for c in calls if c["status"] == 503]
    # what the portal allows in the window: the bucket (less callq's one request of headroom) plus the rate
    allowed = (BURST - 1) + RATE * duration_s
    return {
        "workers": workers_n,
        "window_s": duration_s,
        "configured_rate": RATE,
        "burst": BURST,
        "calls_ok": len(ok),
        "allowed": allowed,
        "utilisation": len(ok) / allowed,
        "steady_rate": (len(ok) - (BURST - 1)) / duration_s,
        "over_limit": len(refused),
    }


async def _first_call(sandbox_url: str, timeout_s: float = 30) -> float:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        calls = await sandbox_calls(sandbox_url)
        if calls:
            return float(min(c["received_wall"] for c in calls))
        await asyncio.sleep(0.05)
    raise TimeoutError("no call reached the sandbox")
