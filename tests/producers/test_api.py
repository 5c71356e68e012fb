"""The Python way in (:mod:`producers.api`), end to end with a worker in this process."""

from __future__ import annotations

from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxHandle
from producers.api import Producer
from tests.support.helpers import make_settings, running_worker, sandbox_portal, wait_outcomes


async def test_python_api_job_succeeds(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """The Python producer returns a new job id, and the worker calls it."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    submitted = await Producer(redis, settings=settings).enqueue(
        from_line="reg1332", to_number="+7 911 123-45-67", text_to_pronounce="Hello", metadata={"lead": 1}
    )
    assert submitted.new and submitted.status == "scheduled"
    async with running_worker(settings):
        (outcome,) = await wait_outcomes(redis, prefix, 1)
    assert outcome["job_id"] == submitted.job_id
    assert outcome["status"] == "succeeded"
    assert [c.params["TO_NUMBER"] for c in sandbox.calls(portal="default")] == ["+79111234567"]
