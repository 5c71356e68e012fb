"""Dead letters (:mod:`producers.deadletters`): a replay takes the dead job's idempotency key over (issue 11)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from ops.sandbox import SandboxHandle
from producers.api import Producer
from producers.deadletters import DeadLetters
from schemas.states import Status
from schemas.wire.outcome import outcome_for
from tests.support.helpers import make_settings, sandbox_portal

LATER = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:00Z")
"""A month ahead (within the 366-day horizon), to the minute."""
LATER_DAY = (datetime.fromisoformat(LATER) + timedelta(days=1)).isoformat()


async def test_the_original_request_after_a_replay_is_no_conflict(
    redis_url: str, prefix: str, redis: Redis, portal: SandboxHandle
) -> None:
    """A dead job with a key is replayed (fresh not_before and deadline); the producer's original request,
    sent again, answers with the replay, not IDEMPOTENCY_KEY_REUSED."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    producer = Producer(redis, settings=settings)
    request = {
        "from_line": "reg1332",
        "to_number": "+79111234567",
        "text_to_pronounce": "Hi",
        "idempotency_key": "lead-6",
        "not_before": LATER,
        "deadline": LATER_DAY,
    }
    first = await producer.submit(request)
    record = await producer.status(first.job_id)
    assert record is not None
    dead = outcome_for(record.job, Status.DEAD, at=datetime.now(UTC), attempts=1)
    assert (await producer.ledger.finalize(dead, job=record.job)).written
    replayed = await DeadLetters(producer).replay(first.job_id)
    assert replayed.submitted is not None and replayed.submitted.status == Status.SCHEDULED
    again = await producer.submit(request)
    assert (again.job_id, again.status, again.new) == (replayed.submitted.job_id, Status.SCHEDULED, False)
    assert again.error is None
