"""What following each call to its end costs (issue 14): end-to-end jobs/s with the follow-up on,
divided by jobs/s with it off, and the ``voximplant.statistic.get`` requests the pull makes per callback
(and so the share of the portal's requests they take).

One worker process; N jobs pushed to the intake stream; jobs/s timed from the first final outcome to
the N-th (call results are not counted: a counting reader skips ``kind call_result``). With the
follow-up on, the run goes on until every job's call result is on the stream, then the sandbox's record
gives the statistics requests. Push is off (no handler bound), so every result is pulled: the upper
bound. The sandbox's calls end 2 s after they are placed; the first poll is 1 s after placement, then
the waits double (the shipped defaults are 20 s and 300 s for calls of a minute or more: the count per
callback is about 1 + log2(duration / first_poll) either way). With push on, a call whose end is pushed
before its first poll costs no statistics request.
"""

from __future__ import annotations

import itertools
from typing import Any

import aiohttp
from redis.asyncio import Redis

from ops.bench.common import callback_jobs, push_intake, wait_outcomes
from ops.bench.harness import Env, bench_env, median, start_worker, stop

FIRST_POLL_S = 1.0
STATISTIC_GET = "voximplant.statistic.get"


async def run(*, quick: bool) -> dict[str, Any]:
    """Measure; returns the figures."""
    n = 200 if quick else 2000
    rounds = 1 if quick else 3
    limits = {"default": (100_000.0, 100_000)}
    with bench_env(limits) as env:
        redis = Redis.from_url(env.redis_url)
        rates: dict[str, list[float]] = {"on": [], "off": []}
        per_callback: list[float] = []
        counter = itertools.count()
        for _ in range(rounds):
            for mode in ("off", "on"):
                await _reset(env)
                prefix = f"bench-follow-{next(counter)}"
                await push_intake(redis, prefix, callback_jobs(n))
                worker = start_worker(
                    env,
                    prefix,
                    portals=["default"],
                    rates=limits,
                    follow=mode == "on",
                    first_poll_s=FIRST_POLL_S,
                )
                try:
                    started = await wait_outcomes(redis, prefix, 1, timeout_s=60)
                    done = await wait_outcomes(redis, prefix, n, timeout_s=300)
                    if mode == "on":
                        await wait_outcomes(redis, prefix, n, timeout_s=300, kind="call_result")
                finally:
                    stop(worker)
                rates[mode].append((n - 1) / (done - started))
                if mode == "on":
                    per_callback.append(await _requests(env, STATISTIC_GET) / n)
        await redis.aclose()
    on, off, requests = median(rates["on"]), median(rates["off"]), median(per_callback)
    return {
        "jobs": n,
        "rounds": rounds,
        "jobs_per_s_follow_on": on,
        "jobs_per_s_follow_off": off,
        "ratio": on / off,
        "statistics_requests_per_callback": requests,
        "share_of_portal_requests": requests / (1 + requests),
    }


async def _reset(env: Env) -> None:
    """Forget the sandbox's calls, so the next run counts its own requests (and the sandbox's
    statistics search stays as short as one run's calls)."""
    async with aiohttp.ClientSession() as session, session.post(f"{env.sandbox_url}/_sandbox/reset") as resp:
        resp.raise_for_status()


async def _requests(env: Env, method: str) -> int:
    """How many ``method`` requests the sandbox recorded since its last reset."""
    url = f"{env.sandbox_url}/_sandbox/calls?method={method}"
    async with aiohttp.ClientSession() as session, session.get(url) as resp:
        return len(await resp.json())
