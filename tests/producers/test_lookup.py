"""An idempotency key is looked up on a portal, never on the first portal that has it (issue 11):
:mod:`producers.lookup` through the Python API."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from ops.sandbox import SandboxHandle
from producers.api import AmbiguousKeyError, Producer
from schemas.config import Settings
from schemas.states import Status
from tests.support.helpers import make_settings, same_key_on_both, sandbox_portal


@pytest.fixture
def settings(redis_url: str, prefix: str, portal: SandboxHandle) -> Settings:
    """Two portals, acme and beta."""
    url = portal.webhook_url("default")
    return make_settings(
        redis_url, prefix, {name: sandbox_portal(url, name=name) for name in ("acme", "beta")}
    )


async def test_python_api_lookups_are_portal_qualified(redis: Redis, settings: Settings) -> None:
    """status/cancel by a key on two portals raise AmbiguousKeyError; with portal= each finds its own job."""
    producer = Producer(redis, settings=settings)
    jobs = await same_key_on_both(producer)
    with pytest.raises(AmbiguousKeyError) as info:
        await producer.status("lead-X")
    assert info.value.portals == ("acme", "beta")
    with pytest.raises(AmbiguousKeyError):
        await producer.cancel("lead-X")
    for portal, job in jobs.items():
        record = await producer.status("lead-X", portal=portal)
        assert record is not None and record.job_id == job.job_id
    cancelled, record = await producer.cancel("lead-X", portal="beta")
    assert cancelled and record is not None and record.job_id == jobs["beta"].job_id
    acme = await producer.status(jobs["acme"].job_id)
    assert acme is not None and acme.state == Status.SCHEDULED, (
        "job ids stay global and the other job untouched"
    )
    assert await producer.status(jobs["acme"].job_id, portal="beta") is None
    assert await producer.status("lead-X", scope={"beta"}) is not None
