"""The dashboard's indexes and counters, kept by the scripts in the same step as each state change:
a portal's scheduled jobs by run_at, its dead jobs, and its minute of outcomes and latency."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import cast

from redis.asyncio import Redis

from producers.api import Producer
from producers.deadletters import DeadLetters
from schemas.states import Status, Step
from schemas.store.keys import Keys
from schemas.store.records import to_ms
from schemas.store.stats import MINUTE_MS, latency_field, latency_quantile, minute_of
from schemas.wire.codes import ErrorCode
from schemas.wire.outcome import OutcomeError, outcome_for
from tests.support.helpers import make_settings, sandbox_portal


def producer(redis: Redis, redis_url: str, prefix: str) -> Producer:
    """A producer for portal ``default`` (never called: no worker runs)."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal("http://127.0.0.1:9/rest/1/x/")})
    return Producer(redis, settings=settings)


async def test_scheduled_index_follows_the_state(redis: Redis, redis_url: str, prefix: str) -> None:
    """Admit adds the job at its run_at; start takes it out; a put-back adds it at the new time; the
    end of the job takes it out for good."""
    p, k = producer(redis, redis_url, prefix), Keys(prefix)
    job_id = (await p.enqueue(from_line="L", to_number="+79111234567", text_to_pronounce="Hi")).job_id
    assert await redis.zscore(k.scheduled("default"), job_id) is not None
    started = await p.ledger.start_attempt(
        job_id, portal="default", now=datetime.now(UTC), info={}, lease_s=5
    )
    assert started.verdict.value == "started"
    assert await redis.zscore(k.scheduled("default"), job_id) is None
    later = datetime.now(UTC) + timedelta(hours=1)
    await p.ledger.reschedule(
        job_id, state=Status.RETRYING, run_at=later, expect={Status.RUNNING}, owner=started.token
    )
    assert await redis.zscore(k.scheduled("default"), job_id) == to_ms(later)
    cancelled, _ = await p.cancel(job_id)
    assert cancelled and await redis.zcard(k.scheduled("default")) == 0


async def test_dead_index_per_portal_and_minute_stats(redis: Redis, redis_url: str, prefix: str) -> None:
    """A dead job joins the portal's dead index and its minute counts it; a replay and a purge take it
    out; the ending attempt's latency is counted in its bucket."""
    p, k = producer(redis, redis_url, prefix), Keys(prefix)
    job_id = (await p.enqueue(from_line="L", to_number="+79111234567", text_to_pronounce="Hi")).job_id
    record = await p.ledger.read(job_id)
    assert record is not None
    now = datetime.now(UTC)
    error = OutcomeError(code=ErrorCode.OUTCOME_UNKNOWN, description="x")
    outcome = outcome_for(record.job, Status.DEAD, at=now, attempts=1, error=error)
    attempt = (1, {"started_at": now.isoformat(), "duration_ms": 320})
    result = await p.ledger.finalize(outcome, job=record.job, step=Step.FINISH, attempt=attempt)
    assert result.written
    assert await redis.zscore(k.dead_on("default"), job_id) is not None
    stats = await cast(
        Awaitable[dict[bytes, bytes]], redis.hgetall(k.minute_stats("default", minute_of(to_ms(now))))
    )
    assert stats[b"dead"] == b"1" and stats[latency_field(320).encode()] == b"1"
    assert stats[b"lat_sum"] == b"320"
    replayed = await DeadLetters(p).replay(job_id)
    assert replayed.submitted is not None
    assert await redis.zcard(k.dead_on("default")) == 0
    assert await redis.zscore(k.scheduled("default"), replayed.submitted.job_id) is not None


async def test_purge_leaves_the_portal_dead_index(redis: Redis, redis_url: str, prefix: str) -> None:
    """Purging a dead job removes it from both dead indexes."""
    p, k = producer(redis, redis_url, prefix), Keys(prefix)
    job_id = (await p.enqueue(from_line="L", to_number="+79111234567", text_to_pronounce="Hi")).job_id
    record = await p.ledger.read(job_id)
    assert record is not None
    error = OutcomeError(code=ErrorCode.OUTCOME_UNKNOWN, description="x")
    outcome = outcome_for(record.job, Status.DEAD, at=datetime.now(UTC), error=error)
    assert (await p.ledger.finalize(outcome, job=record.job)).written
    assert await DeadLetters(p).purge(now=datetime.now(UTC)) == 1
    assert await redis.zcard(k.dead_on("default")) == 0 and await redis.zcard(k.dead) == 0


def test_latency_quantile() -> None:
    """The quantile reads the upper bound of the bucket it falls in; none without samples."""
    assert latency_quantile([0] * 8, 0.5) is None
    assert latency_quantile([1, 0, 0, 1, 0, 0, 0, 0], 0.5) == 100
    assert latency_quantile([1, 0, 0, 1, 0, 0, 0, 0], 0.95) == 1000
    assert latency_quantile([0, 0, 0, 0, 0, 0, 0, 3], 0.5) == 20000
    assert minute_of(MINUTE_MS * 5 + 1) == 5
