"""A succeeded job whose call is followed, planted through the store's own scripts (no worker)."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import cast

from redis.asyncio import Redis

from schemas.config import PortalConfig
from schemas.states import Status
from schemas.store.calls import CallStore
from schemas.store.keys import Keys
from schemas.wire.job import CallbackJob
from schemas.wire.outcome import outcome_for


async def plant_followed_job(
    redis: Redis, prefix: str, portal: PortalConfig, job: CallbackJob, *, call_id: str
) -> CallStore:
    """``job`` succeeded with ``call_id`` (its record and outcome), its call now ``awaiting`` (FOLLOW,
    with its CALL_ID index): what a worker leaves behind once Bitrix24 accepted the callback."""
    store = CallStore(redis, keys=Keys(prefix), retention_s=600, outcomes_maxlen=1000)
    now = datetime.now(UTC)
    outcome = outcome_for(job, Status.SUCCEEDED, at=now, attempts=1, call_id=call_id).to_json()
    fields = {"job": job.to_json(), "state": Status.SUCCEEDED, "attempts": 1, "outcome": outcome}
    await cast(Awaitable[int], redis.hset(store.keys.job(job.job_id), mapping=fields))
    async with redis.pipeline(transaction=True) as pipe:
        await store.follow_in(job.job_id, portal, call_id=call_id, attempt=1, now=now)(pipe)
        await pipe.execute()
    return store
