"""``callq resume PORTAL`` as ops run it: a real command wakes the jobs a worker holds for a halt."""

from __future__ import annotations

import dataclasses

from redis.asyncio import Redis

from ops.sandbox import Fault, Sandbox, SandboxHandle
from producers.api import Producer
from schemas.store.keys import Keys
from tests.support.helpers import (
    FAST,
    TEXT,
    make_settings,
    running_worker,
    sandbox_portal,
    wait_for,
    wait_outcomes,
)
from tests.support.processes import callq_env, run_callq


async def test_resume_wakes_the_jobs_held_by_a_manual_block(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """OVERLOAD_LIMIT halts the portal for an hour; `callq resume` wakes its waiting jobs at once."""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"), rate=2.0, burst=2)}
    )
    sandbox.add_faults([Fault.error(503, "OVERLOAD_LIMIT", "Portal blocked")])
    producer = Producer(redis, settings=settings)
    for n in range(3):
        await producer.enqueue(from_line="reg1332", to_number=f"+7911123456{n}", text_to_pronounce=TEXT)
    async with running_worker(settings, dataclasses.replace(FAST, block_s=3600.0)):
        held = Keys(prefix).held("default")
        await wait_for(lambda: redis.scard(held), what="a job held by the halt")
        env = callq_env(
            CALLQ_REDIS_URL=redis_url,
            CALLQ_KEY_PREFIX=prefix,
            CALLQ_WEBHOOK_URL=portal.webhook_url("default"),
            CALLQ_TIMEZONE="UTC",
        )
        code, out, err = await run_callq(["resume", "default"], env)
        assert code == 0, err
        assert out.startswith("portal default: resumed;") and "woken" in out
        outcomes = await wait_outcomes(redis, prefix, 3, timeout_s=15)
    assert sorted(o["status"] for o in outcomes) == ["succeeded"] * 3
    assert [c.status for c in sandbox.calls()].count(503) == 1
