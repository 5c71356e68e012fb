"""An attempt's end that its record no longer takes is logged and counted, on every path that drops it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from ops.redis_server import free_port
from producers.api import Producer
from schemas.states import Status
from schemas.store.keys import Keys
from schemas.store.ledger import Ledger
from tests.support.helpers import make_settings, sandbox_portal
from worker.bitrix.address import PortalAddresses
from worker.bitrix.oauth import PortalAuth
from worker.jobs.deps import Deps
from worker.jobs.leases import AttemptLeases, LeaseTiming
from worker.jobs.ratelimit import RateLimiter
from worker.jobs.settle import EVENT_RESULT_DROPPED, RUNNING, end_job, put_back
from worker.service.metrics import Metrics


@pytest.fixture
async def owner(redis: Redis, redis_url: str, prefix: str) -> AsyncIterator[tuple[Deps, str]]:
    """A worker's collaborators holding a started attempt's token, and the job's id."""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal(f"http://127.0.0.1:{free_port()}/rest/1/x/")}
    )
    submitted = await Producer(redis, settings=settings).enqueue(
        from_line="reg1332", to_number="+79111234567", text_to_pronounce="Hello"
    )
    ledger = Ledger(redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=100)
    start = await ledger.start_attempt(
        submitted.job_id, portal="default", now=datetime.now(UTC), info={}, lease_s=30
    )
    assert start.token
    async with aiohttp.ClientSession() as session:
        yield (
            Deps(
                settings=settings,
                ledger=ledger,
                session=session,
                limiter=RateLimiter(redis, keys=Keys(prefix)),
                auth=PortalAuth(redis, prefix=prefix, session=session),
                addresses=PortalAddresses(redis, Keys(prefix)),
                leases=AttemptLeases(ledger, timing=LeaseTiming()),
                metrics=Metrics(),
                attempt_token=start.token,
            ),
            submitted.job_id,
        )


def dropped(metrics: Metrics, reason: str) -> float:
    """callq_results_dropped_total{reason} in this worker's registry."""
    return metrics.registry.get_sample_value("callq_results_dropped_total", {"reason": reason}) or 0.0


@pytest.mark.parametrize("path", ["end_job", "put_back"])
async def test_a_result_for_a_vanished_record_is_logged_and_counted(
    path: str, redis: Redis, prefix: str, owner: tuple[Deps, str]
) -> None:
    """A success (or a put-back) for a record Redis lost: job.result_dropped with reason missing, counted once."""
    deps, job_id = owner
    record = await deps.ledger.read(job_id)
    assert record is not None
    await redis.delete(Keys(prefix).job(job_id))  # a Redis that restarted empty, say
    with capture_logs() as logs:
        if path == "end_job":
            await end_job(deps, record, Status.SUCCEEDED, call_id="callback.1.2")
        else:
            now = datetime.now(UTC)
            later = now + timedelta(minutes=1)
            await put_back(deps, record, state=Status.RETRYING, run_at=later, now=now, expect=RUNNING)
    events = [e for e in logs if e["event"] == EVENT_RESULT_DROPPED]
    assert len(events) == 1 and events[0]["reason"] == "missing", logs
    assert dropped(deps.metrics, "missing") == 1
    assert dropped(deps.metrics, "final") == 0
