"""Attempt leases in the ledger's scripts: START takes one, the owner's heartbeat keeps it, an orphan
guard acts only once it lapsed (and never after a stall), put-backs own the queue score, resume wakes.
"""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from redis.asyncio import Redis

from producers.api import Producer
from schemas.policy.bucket import Bucket
from schemas.states import Status
from schemas.store.keys import Keys
from schemas.store.ledger import Ledger, SlotRequest
from schemas.store.records import to_ms
from schemas.store.replies import StartVerdict
from schemas.store.stats import LATENCY_COUNT, minute_of
from schemas.wire.codes import ErrorCode
from schemas.wire.outcome import OutcomeError, outcome_for
from tests.support.helpers import make_settings, sandbox_portal

NUMBER = "+79111234567"


@pytest.fixture
def ledger(redis: Redis, prefix: str) -> Ledger:
    """A ledger under the test's prefix."""
    return Ledger(redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=100)


async def new_job(redis: Redis, redis_url: str, prefix: str, number: str = NUMBER) -> str:
    """A scheduled job, due now; returns its id."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal("http://127.0.0.1:9/rest/1/x/")})
    submitted = await Producer(redis, settings=settings).enqueue(
        from_line="reg1332", to_number=number, text_to_pronounce="Hello"
    )
    return submitted.job_id


async def redis_ms(redis: Redis) -> int:
    """Redis's own clock, in unix ms."""
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def start(ledger: Ledger, job_id: str, *, lease_s: float = 5.0) -> str:
    """START the job's attempt; returns the verdict."""
    result = await ledger.start_attempt(
        job_id, portal="default", now=datetime.now(UTC), info={}, lease_s=lease_s
    )
    return result.verdict


async def test_start_takes_a_lease_and_a_second_start_finds_it_busy(
    redis: Redis, redis_url: str, prefix: str, ledger: Ledger
) -> None:
    """While the lease lives a second START is `busy` and moves the queue entry to the lease's end."""
    job_id = await new_job(redis, redis_url, prefix)
    keys = Keys(prefix)
    assert await start(ledger, job_id) == "started"
    lease = await redis.zscore(keys.running, job_id)
    assert lease is not None and 4000 < lease - await redis_ms(redis) <= 5000
    second = await ledger.start_attempt(job_id, portal="default", now=datetime.now(UTC), info={}, lease_s=5)
    assert (second.verdict, second.attempt) == ("busy", 1)
    assert await redis.zscore(keys.queue, keys.jobs.member(job_id)) == lease


async def test_a_lapsed_lease_is_interrupted(
    redis: Redis, redis_url: str, prefix: str, ledger: Ledger
) -> None:
    """Once the lease lapsed, START reports the attempt `interrupted` with the time it saw that."""
    job_id = await new_job(redis, redis_url, prefix)
    assert await start(ledger, job_id) == "started"
    await redis.zadd(Keys(prefix).running, {job_id: await redis_ms(redis) - 1})
    again = await ledger.start_attempt(job_id, portal="default", now=datetime.now(UTC), info={}, lease_s=5)
    assert again.verdict == "interrupted"
    assert abs(again.seen_ms - await redis_ms(redis)) < 1000
    record = await ledger.read(job_id)
    assert record is not None and (record.state, record.attempts) == (Status.RUNNING, 1), "nothing changed"


async def test_heartbeat_renews_only_leases_still_held(
    redis: Redis, redis_url: str, prefix: str, ledger: Ledger
) -> None:
    """The heartbeat extends live leases and never re-adds one that left the index."""
    job_id = await new_job(redis, redis_url, prefix)
    assert await start(ledger, job_id, lease_s=1) == "started"
    now_ms, renewed = await ledger.heartbeat([job_id, "gone"], worker_id="w1", lease_s=30, liveness_s=10)
    assert renewed == {job_id}
    keys = Keys(prefix)
    assert await redis.zscore(keys.running, job_id) == pytest.approx(now_ms + 30_000)
    assert await redis.zscore(keys.running, "gone") is None
    assert 9000 < await redis.pttl(keys.worker("w1")) <= 10_000


async def test_an_orphan_guard_writes_only_while_the_lease_is_lapsed(
    redis: Redis, redis_url: str, prefix: str, ledger: Ledger
) -> None:
    """FINALIZE with an orphan guard is `busy` while the lease lives or after a stall, written otherwise."""
    job_id = await new_job(redis, redis_url, prefix)
    keys = Keys(prefix)
    assert await start(ledger, job_id) == "started"
    await redis.set(keys.jobs.retry(job_id), 1, ex=88400)  # as a 0.2 worker that ran it and died left
    record = await ledger.read(job_id)
    assert record is not None
    error = OutcomeError(code=ErrorCode.OUTCOME_UNKNOWN, description="interrupted")
    outcome = outcome_for(record.job, Status.DEAD, at=datetime.now(UTC), attempts=1, error=error)

    live = await ledger.finalize(outcome, job=record.job, orphan_seen_ms=await redis_ms(redis))
    assert live.busy and not live.written, "the owner's lease is alive"

    await redis.zadd(keys.running, {job_id: await redis_ms(redis) - 1})
    stale = await ledger.finalize(outcome, job=record.job, orphan_seen_ms=await redis_ms(redis) - 5000)
    assert stale.busy and not stale.written, "seen lapsed 5 s ago: Redis may have stalled since"

    done = await ledger.finalize(outcome, job=record.job, orphan_seen_ms=await redis_ms(redis))
    assert done.written
    assert await redis.zscore(keys.running, job_id) is None
    assert await redis.zscore(keys.queue, keys.jobs.member(job_id)) is None, "its arq run is given up"
    assert not await redis.exists(keys.jobs.job(job_id))
    assert not await redis.exists(keys.jobs.retry(job_id)), "arq's try counter goes with it"


async def test_a_put_back_owns_the_queue_score_and_restores_the_queue_entry(
    redis: Redis, redis_url: str, prefix: str, ledger: Ledger
) -> None:
    """RESCHEDULE sets the queue score itself, bringing back an entry that was given up; no arq job key
    is written (the worker runs callq's jobs from the entry alone)."""
    job_id = await new_job(redis, redis_url, prefix)
    keys = Keys(prefix)
    assert await start(ledger, job_id) == "started"
    await redis.delete(keys.jobs.job(job_id))
    await redis.zrem(keys.queue, keys.jobs.member(job_id))
    run_at = datetime.now(UTC) + timedelta(minutes=5)
    result = await ledger.reschedule(job_id, state=Status.RETRYING, run_at=run_at, expect={Status.RUNNING})
    assert result.verdict == "ok"
    assert await redis.zscore(keys.queue, keys.jobs.member(job_id)) == to_ms(run_at)
    assert not await redis.exists(keys.jobs.job(job_id))
    assert await redis.zscore(keys.running, job_id) is None


async def test_resume_wakes_the_jobs_held_by_a_halt(
    redis: Redis, redis_url: str, prefix: str, ledger: Ledger
) -> None:
    """`callq resume` lifts the halt and moves every job put back for it to now; others keep their time."""
    keys = Keys(prefix)
    held = await new_job(redis, redis_url, prefix)
    other = await new_job(redis, redis_url, prefix, number="+79111234568")
    await redis.set(keys.portal_halt("default"), "{}", px=3_600_000)
    hour = datetime.now(UTC) + timedelta(hours=1)
    for job_id, by in ((held, "default"), (other, None)):
        result = await ledger.reschedule(
            job_id,
            state=Status.SCHEDULED,
            run_at=hour,
            expect={Status.SCHEDULED},
            held_by=by,
            held_ttl_s=3600,
        )
        assert result.verdict == "ok"
    lifted, woken = await ledger.resume("default")
    assert (lifted, woken) == (True, 1)
    assert not await redis.exists(keys.portal_halt("default"), keys.held("default"))
    assert await redis.zscore(keys.queue, keys.jobs.member(held)) <= await redis_ms(redis)
    assert await redis.zscore(keys.queue, keys.jobs.member(other)) == to_ms(hour)
    record = await ledger.read(held)
    assert record is not None and record.run_at is not None and record.run_at < hour


async def test_orphan_candidates_are_the_lapsed_leases(
    redis: Redis, redis_url: str, prefix: str, ledger: Ledger
) -> None:
    """Only attempts whose lease lapsed are candidates, with Redis's time."""
    alive, lapsed = (
        await new_job(redis, redis_url, prefix),
        await new_job(redis, redis_url, prefix, "+79111234568"),
    )
    for job_id in (alive, lapsed):
        assert await start(ledger, job_id) == "started"
    await redis.zadd(Keys(prefix).running, {lapsed: await redis_ms(redis) - 1})
    seen_ms, ids = await ledger.orphan_candidates(limit=10)
    assert ids == [lapsed]
    assert abs(seen_ms - await redis_ms(redis)) < 1000


async def test_a_put_back_for_a_halt_already_lifted_runs_now(
    redis: Redis, redis_url: str, prefix: str, ledger: Ledger
) -> None:
    """A job that saw the halt but is put back after `callq resume` lifted it does not wait for it."""
    job_id = await new_job(redis, redis_url, prefix)
    hour = datetime.now(UTC) + timedelta(hours=1)
    result = await ledger.reschedule(
        job_id,
        state=Status.SCHEDULED,
        run_at=hour,
        expect={Status.SCHEDULED},
        held_by="default",
        held_ttl_s=3600,
    )
    assert result.verdict == "ok"
    keys = Keys(prefix)
    assert await redis.zscore(keys.queue, keys.jobs.member(job_id)) <= await redis_ms(redis)
    assert not await redis.exists(keys.held("default"))


async def test_a_start_sent_twice_finds_its_own_attempt(
    redis: Redis, redis_url: str, prefix: str, ledger: Ledger
) -> None:
    """The same START again (redis-py re-sends a command whose reply was lost) is `started`, same attempt."""
    job_id = await new_job(redis, redis_url, prefix)
    k = Keys(prefix)
    keys = [
        k.job(job_id),
        k.portal_halt("default"),
        k.portal_pause("default"),
        k.running,
        k.queue,
        k.scheduled("default"),
    ]
    args: list[str | int] = [job_id, "{}", 5000, k.jobs.member(job_id), "token-1"]
    first = await ledger.scripts.start(keys=keys, args=args)
    again = await ledger.scripts.start(keys=keys, args=args)
    other = await ledger.scripts.start(keys=keys, args=[*args[:4], "token-2"])
    assert [v.decode() for v in first][:2] == ["started", "1"]
    assert [v.decode() for v in again][:2] == ["started", "1"]
    assert other[0] == b"busy"


async def test_callq_list_shows_an_attempt_in_flight_whose_arq_job_is_gone(
    redis: Redis, redis_url: str, prefix: str, ledger: Ledger
) -> None:
    """`callq list` finds running attempts through the running index, even with no queue entry."""
    import argparse
    import io
    import json

    from ops.cli import jobs as producer_cli

    job_id = await new_job(redis, redis_url, prefix)
    assert await start(ledger, job_id) == "started"
    keys = Keys(prefix)
    await redis.zrem(keys.queue, keys.jobs.member(job_id))
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal("http://127.0.0.1:9/rest/1/x/")})
    out = io.StringIO()
    args = argparse.Namespace(scheduled=False, portal=None, line=None, limit=10, json=True)
    assert await producer_cli.list_jobs(args, settings=settings, redis=redis, out=out) == 0
    assert [(r["job_id"], r["status"]) for r in json.loads(out.getvalue())] == [(job_id, "running")]


async def test_an_attempt_entry_needs_its_record(
    ledger: Ledger, redis: Redis, redis_url: str, prefix: str
) -> None:
    """``finish_attempt`` writes the attempt's entry (and its latency in the minute's stats) only on a
    record that exists: one gone meanwhile does not come back as a hash holding only ``attempt:N``."""
    keys = Keys(prefix)
    ended = datetime.now(UTC)
    entry = {"ended_at": ended.isoformat(), "duration_ms": 120, "http_status": 200}
    job_id = await new_job(redis, redis_url, prefix)
    record = await ledger.read(job_id)
    assert record is not None
    assert await ledger.finish_attempt(job_id, 1, entry, job=record.job)
    assert await cast(Awaitable[bool], redis.hexists(keys.job(job_id), "attempt:1"))
    stats = keys.minute_stats(record.job.portal, minute_of(to_ms(ended)))
    assert int(await cast(Awaitable[bytes | None], redis.hget(stats, LATENCY_COUNT)) or 0) == 1
    await redis.delete(keys.job(job_id))
    assert not await ledger.finish_attempt(job_id, 2, entry, job=record.job)
    assert not await ledger.finish_attempt(job_id, 2, entry)
    assert not await redis.exists(keys.job(job_id))
    assert int(await cast(Awaitable[bytes | None], redis.hget(stats, LATENCY_COUNT)) or 0) == 1


ONE_A_10S = SlotRequest(
    portal_bucket=Bucket(rate=0.1, burst=1),
    line=None,
    line_interval_ms=0,
    line_lateness_ms=50,
    portal_lateness_ms=250,
)


async def test_a_start_takes_the_portal_slot_in_the_same_step(
    redis: Redis, redis_url: str, prefix: str, ledger: Ledger
) -> None:
    """START with slots: the first job's slot is now (started, no wait); the next one's is 10 s
    away, so START puts it back to wake 0.4 s before the slot, holding it, and starts nothing."""
    first, second = (
        await new_job(redis, redis_url, prefix),
        await new_job(redis, redis_url, prefix, "+79110000002"),
    )
    now = datetime.now(UTC)
    began = await ledger.start_attempt(first, portal="default", now=now, info={}, lease_s=5, slots=ONE_A_10S)
    assert (began.verdict, began.attempt, began.wait_ms) == (StartVerdict.STARTED, 1, 0)
    held = await ledger.start_attempt(second, portal="default", now=now, info={}, lease_s=5, slots=ONE_A_10S)
    assert held.verdict is StartVerdict.HELD
    record = await ledger.read(second)
    assert record is not None
    assert (record.state, record.attempts) == (Status.SCHEDULED, 0)
    assert record.slots["portal"] - held.wake_ms == 400
    assert to_ms(record.run_at or now) == held.wake_ms
    assert await redis.zscore(Keys(prefix).queue, Keys(prefix).jobs.member(second)) == held.wake_ms
    # woken at its time, the slot it holds is used: it starts, waiting the last 0.4 s itself
    again = await ledger.start_attempt(second, portal="default", now=now, info={}, lease_s=5, slots=ONE_A_10S)
    assert again.verdict is StartVerdict.STARTED
    assert 9_000 < again.wait_ms <= 10_000


async def test_a_slot_past_the_deadline_wakes_the_job_at_its_deadline(
    redis: Redis, redis_url: str, prefix: str, ledger: Ledger
) -> None:
    """A slot at or past the job's deadline: START puts it back to wake at the deadline (to expire then)."""
    first, second = (
        await new_job(redis, redis_url, prefix),
        await new_job(redis, redis_url, prefix, "+79110000002"),
    )
    now = datetime.now(UTC)
    await ledger.start_attempt(first, portal="default", now=now, info={}, lease_s=5, slots=ONE_A_10S)
    deadline_ms = await redis_ms(redis) + 3_000
    slots = SlotRequest(**{**ONE_A_10S.__dict__, "deadline_ms": deadline_ms})
    held = await ledger.start_attempt(second, portal="default", now=now, info={}, lease_s=5, slots=slots)
    assert (held.verdict, held.wake_ms) == (StartVerdict.HELD, deadline_ms)


async def test_a_halted_portal_takes_no_slot(
    redis: Redis, redis_url: str, prefix: str, ledger: Ledger
) -> None:
    """START on a paused portal is `halted` before any slot is taken: the bucket stays untouched."""
    job_id = await new_job(redis, redis_url, prefix)
    k = Keys(prefix)
    await redis.set(k.portal_pause("default"), "1", px=5000)
    halted = await ledger.start_attempt(
        job_id, portal="default", now=datetime.now(UTC), info={}, lease_s=5, slots=ONE_A_10S
    )
    assert halted.verdict is StartVerdict.HALTED
    assert await redis.exists(k.rate_bucket("default")) == 0


async def test_a_scheduled_record_keeps_redis_default_compact_encoding(
    redis: Redis, redis_url: str, prefix: str
) -> None:
    """Admitted, a typical job's record is a listpack under Redis's default limits (its job is kept
    in small fields, not one JSON value over 64 bytes), and reads back as the job admitted."""
    limit = int((await redis.config_get("hash-max-listpack-value"))["hash-max-listpack-value"])
    if limit < 64:
        pytest.skip(f"this Redis keeps hashes compact only up to {limit} bytes a value")
    job_id = await new_job(redis, redis_url, prefix)
    assert await redis.object("encoding", Keys(prefix).job(job_id)) == b"listpack"
    record = await Ledger(redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=100).read(job_id)
    assert record is not None
    assert (record.job.to_number, record.job.text_to_pronounce, record.state) == (
        NUMBER,
        "Hello",
        "scheduled",
    )
