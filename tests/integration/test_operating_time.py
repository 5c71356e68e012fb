"""callback.start's execution-time limit: callq paces itself under the budget, and after a refusal
waits until ``operating_reset_at``, never a fixed minute, spending no attempt."""

from __future__ import annotations

import math
from typing import Any

from redis.asyncio import Redis
from structlog.testing import capture_logs

from ops.sandbox import Fault, Sandbox, SandboxPortal, running_sandbox
from producers.api import Producer
from schemas.config import Settings
from schemas.store.keys import Keys
from schemas.store.ledger import Ledger
from tests.support.helpers import make_settings, running_worker, sandbox_portal, wait_outcomes

TEXT = "Callback request"
CALLBACK = "voximplant.callback.start"


def portal_sandbox(**switches: Any) -> Sandbox:
    """One portal with a high rate limit and the given switches."""
    portal = SandboxPortal(name="default", webhooks={(1, "sandboxsecret")}, rate=1000.0, burst=1000)
    return Sandbox([portal.with_switches(switches)])


async def enqueue(redis: Redis, settings: Settings, numbers: range) -> list[str]:
    """One job per number; their ids."""
    producer = Producer(redis, settings=settings)
    return [
        (
            await producer.enqueue(from_line="reg1332", to_number=f"+7911123{n:04d}", text_to_pronounce=TEXT)
        ).job_id
        for n in numbers
    ]


async def test_callq_paces_itself_under_the_budget(redis_url: str, prefix: str, redis: Redis) -> None:
    """A portal whose callback.start may use 20 s per 3 s window, each call counted as 1 s: 40 jobs all
    succeed with no OPERATION_TIME_LIMIT, because callq pauses at 90 % until the oldest part is released."""
    sandbox = portal_sandbox(operating_limit_s=20.0, operating_window_s=3.0, processing_s=1.0)
    async with running_sandbox(sandbox) as handle:
        portal = sandbox_portal(handle.webhook_url("default"), rate=10.0, burst=2, operating_budget_s=20.0)
        settings = make_settings(redis_url, prefix, {"default": portal})
        await enqueue(redis, settings, range(40))
        with capture_logs() as logs:
            async with running_worker(settings):
                outcomes = await wait_outcomes(redis, prefix, 40, timeout_s=60)
    assert {o["status"] for o in outcomes} == {"succeeded"}
    statuses = [call.status for call in sandbox.calls()]
    assert 429 not in statuses and len(statuses) == 40, "callq's own pacing: no refusal for execution time"
    paused = [e for e in logs if e["event"] == "portal.operating_paused"]
    assert len(paused) >= 2 and all(e["operating_s"] >= 18.0 for e in paused)


async def test_after_a_refusal_no_request_until_operating_reset_at(
    redis_url: str, prefix: str, redis: Redis
) -> None:
    """An injected OPERATION_TIME_LIMIT (no `time` in it): the portal's callbacks wait until the
    `operating_reset_at` of the last answer, not a fixed minute, and the refused job spends no attempt."""
    sandbox = portal_sandbox(operating_window_s=4.0)
    async with running_sandbox(sandbox) as handle:
        # 2 requests/s, no burst: each request goes out after the one before was answered
        portal = sandbox_portal(handle.webhook_url("default"), rate=2.0, burst=1)
        settings = make_settings(redis_url, prefix, {"default": portal})
        async with running_worker(settings):
            await enqueue(redis, settings, range(1))
            await wait_outcomes(redis, prefix, 1)
            reset_at = int(sandbox.calls()[0].received_wall + 4.0)
            sandbox.add_faults(
                [Fault.error(429, "OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit")]
            )
            ids = await enqueue(redis, settings, range(1, 4))
            outcomes = await wait_outcomes(redis, prefix, 4, timeout_s=20)
    assert {o["status"] for o in outcomes} == {"succeeded"}
    calls = sandbox.calls()
    refused = next(i for i, c in enumerate(calls) if c.status == 429)
    assert all(c.received_wall >= reset_at for c in calls[refused + 1 :]), "nothing sent before the reset"
    assert calls[-1].received_wall < reset_at + 10, "the reset, not a fixed minute"
    await assert_no_attempt_spent(redis, prefix, ids)


async def test_a_refusal_carrying_its_reset_time_is_waited_out(
    redis_url: str, prefix: str, redis: Redis
) -> None:
    """The portal's own 429 (past a 3 s limit, each call counted as 1 s; callq's budget set far higher so
    that only the portal limits) carries `operating_reset_at`: callq sends nothing before it, and every
    job succeeds within seconds, not minutes."""
    sandbox = portal_sandbox(operating_limit_s=3.0, operating_window_s=3.0, processing_s=1.0)
    async with running_sandbox(sandbox) as handle:
        # 2 requests/s, no burst: each request goes out after the one before was answered
        portal = sandbox_portal(handle.webhook_url("default"), rate=2.0, burst=1, operating_budget_s=10_000.0)
        settings = make_settings(redis_url, prefix, {"default": portal})
        ids = await enqueue(redis, settings, range(6))
        async with running_worker(settings):
            outcomes = await wait_outcomes(redis, prefix, 6, timeout_s=30)
    assert {o["status"] for o in outcomes} == {"succeeded"}
    calls = sandbox.calls()
    first = next(i for i, c in enumerate(calls) if c.status == 429)
    assert first == 4, "four calls fill the 3 s limit; the fifth is refused"
    reset_at = math.floor(calls[0].received_wall + 3.0)  # what the refusal said: the first call leaves then
    assert calls[first + 1].received_wall >= reset_at, "nothing sent before operating_reset_at"
    assert calls[-1].received_wall - calls[0].received_wall < 20, "waits of seconds, not a fixed minute"
    await assert_no_attempt_spent(redis, prefix, ids)


async def assert_no_attempt_spent(redis: Redis, prefix: str, ids: list[str]) -> None:
    """Every job's only counted attempt is its successful one."""
    ledger = Ledger(redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=100)
    for job_id in ids:
        record = await ledger.read(job_id)
        assert record is not None
        assert [e.get("code") for e in record.attempt_log if e.get("counts", True)] == [None]
