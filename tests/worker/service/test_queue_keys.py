"""callq's jobs in arq's queue, end to end: admitted without an arq job key, run on the direct lane
(:mod:`schemas.jobqueue.lane`), and leaving nothing of arq's behind when they end."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxHandle
from producers.api import Producer
from schemas.store.keys import Keys
from tests.support.helpers import TEXT, make_settings, running_worker, sandbox_portal, wait_for, wait_outcomes


async def _arq_keys(redis: Redis, prefix: str) -> list[str]:
    return sorted([key.decode() async for key in redis.scan_iter(match=f"arq:*:{prefix}:*")])


async def test_jobs_leave_no_arq_key_scheduled_done_or_cancelled(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """A scheduled job has a queue entry and no arq key; two jobs run to success and one cancelled
    leave no queue entry and no arq key (no job, try counter, claim or result)."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    producer = Producer(redis, settings=settings)
    keys = Keys(prefix)
    later = await producer.enqueue(
        from_line="reg1332",
        to_number="+79111234000",
        text_to_pronounce=TEXT,
        not_before=datetime.now(UTC) + timedelta(hours=1),
    )
    assert await redis.zscore(keys.queue, keys.jobs.member(later.job_id)) is not None
    assert await _arq_keys(redis, prefix) == []
    async with running_worker(settings):
        for number in ("+79111234001", "+79111234002"):
            await producer.enqueue(from_line="reg1332", to_number=number, text_to_pronounce=TEXT)
        outcomes = await wait_outcomes(redis, prefix, 2)
        assert [o["status"] for o in outcomes] == ["succeeded", "succeeded"]

        async def only_the_later_one_queued() -> bool:
            members = await redis.zrange(keys.queue, 0, -1)
            return members == [keys.jobs.member(later.job_id).encode()] and not await _arq_keys(redis, prefix)

        await wait_for(only_the_later_one_queued, what="the done jobs' entries and claims gone")
    cancelled, _record = await producer.cancel(later.job_id)
    assert cancelled
    assert await redis.zcard(keys.queue) == 0
    assert await _arq_keys(redis, prefix) == []
