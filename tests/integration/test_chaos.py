"""Chaos: 500 jobs, a portal failing 20% of requests, and a worker process SIGKILLed every few seconds.

Whatever happens, every intake entry ends in exactly one outcome, and no number is rung twice.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ops.sandbox import Fault, Sandbox, SandboxHandle
from schemas.store.keys import Keys
from tests.support.helpers import called_numbers, job_json, read_outcomes
from tests.support.processes import SHORT_TIMEOUTS, WorkerProcess, new_worker, stop_all, write_config

JOBS = 500
KILL_EVERY_S = 3.0
RANDOM_FAULTS = [
    Fault.error(500, "INTERNAL_SERVER_ERROR", "Internal server error"),  # after running: result unknown
    Fault.delay(1.5),  # runs, but answers after the 1 s request timeout: result unknown
]
REFUSAL = Fault.error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")  # before running: re-sent
REFUSALS = 3
"""Refusals are queued, one per early kill cycle, rather than drawn at random: each refusal pauses the
portal, and the pause doubles on every refusal within a minute (1, 2, 4 ... 60 s) even with successes
in between, so 20% random refusals would stall the run on 60 s pauses."""


@pytest.mark.timeout(150)
async def test_chaos_every_entry_ends_once_and_no_number_rings_twice(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle, tmp_path: Path
) -> None:
    """500 intake jobs, 20% faults, one of two workers SIGKILLed every 3 s: one outcome each, no double call."""
    config = write_config(
        tmp_path / "callq.toml",
        {
            "default": {
                "webhook_url": portal.webhook_url("default"),
                "default_region": "RU",
                "rate": 100.0,
                "burst": 50,
            }
        },
    )
    sandbox.set_random_faults(0.2, RANDOM_FAULTS, seed=7)
    async with redis.pipeline(transaction=False) as pipe:
        for n in range(JOBS):
            pipe.xadd(Keys(prefix).intake, {"job": job_json(f"+7911{n:07d}")})
        entry_ids = {raw.decode() for raw in await pipe.execute()}
    steady = new_worker(tmp_path, config, redis_url, prefix, "steady", *SHORT_TIMEOUTS)
    victims: list[WorkerProcess] = []
    started = time.monotonic()
    try:
        steady.start()
        while await redis.xlen(Keys(prefix).outcomes) < JOBS and time.monotonic() - started < 90:
            victim = new_worker(tmp_path, config, redis_url, prefix, f"victim{len(victims)}", *SHORT_TIMEOUTS)
            victims.append(victim)
            victim.start()
            if len(victims) <= REFUSALS:
                sandbox.add_faults([REFUSAL])
            await asyncio.sleep(KILL_EVERY_S)  # the chaos schedule, not a wait for work
            victim.kill()
        took_s = time.monotonic() - started
        steady_alive = steady.process is not None and steady.process.poll() is None
    finally:
        await stop_all(steady, *victims)
    outcomes = await read_outcomes(redis, prefix)
    distribution = Counter(f"{o['status']}/{(o['error'] or {}).get('code', '-')}" for o in outcomes)
    interrupted = sum("interrupted" in (o["error"] or {}).get("description", "") for o in outcomes)
    faults = Counter(c.fault for c in sandbox.calls())
    print(
        f"chaos: {took_s:.1f}s, {len(victims)} kills, {len(sandbox.calls())} requests {dict(faults)}, "
        f"outcomes {dict(distribution)}, {interrupted} interrupted by a kill"
    )
    assert steady_alive
    assert interrupted > 0, "some kills cut a request in flight"
    assert Counter(Counter(o["job_id"] for o in outcomes).values()) == {1: JOBS}, "one outcome per job"
    assert {o.get("intake_id") for o in outcomes} == entry_ids, "every intake entry has its outcome"
    executed = Counter(called_numbers(sandbox, executed_only=True))
    assert [n for n, times in executed.items() if times > 1] == [], "retry_unknown is off: nothing rung twice"
