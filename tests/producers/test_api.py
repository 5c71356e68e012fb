"""The Python way in (:mod:`producers.api`), end to end with a worker in this process."""

from __future__ import annotations

from redis.asyncio import Redis
from structlog.testing import capture_logs

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


async def test_an_admission_logs_at_debug_only(redis_url: str, prefix: str, redis: Redis) -> None:
    """A new job's ``job.scheduled`` line is DEBUG (masked number, its ids): at INFO a job's one
    line is its outcome's."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal("http://127.0.0.1:9/rest/1/x/")})
    with capture_logs() as logs:
        submitted = await Producer(redis, settings=settings).enqueue(
            from_line="reg1332", to_number="+7 911 123-45-67", text_to_pronounce="Hello"
        )
    (line,) = [entry for entry in logs if entry["event"] == "job.scheduled"]
    assert line["log_level"] == "debug"
    assert line["job_id"] == submitted.job_id and line["portal"] == "default" and line["line"] == "reg1332"
    assert line["to_number"] == "+7911***4567"
    assert [entry for entry in logs if entry["log_level"] != "debug"] == []
