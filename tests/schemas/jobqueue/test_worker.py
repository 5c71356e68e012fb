"""The batched claim (:mod:`schemas.jobqueue.worker`): arq's semantics, one round trip per batch.

Run with plain arq jobs (not callq's), so that what is checked is the dispatch alone: every job
runs once however many workers race for it, never more at a time than ``max_jobs``, and a worker
told to stop picking jobs claims nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import operator
from collections import Counter
from functools import partial
from typing import Any

from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.cron import cron
from arq.utils import timestamp_ms
from arq.worker import Worker, func
from redis.asyncio import Redis

from schemas.jobqueue.worker import CLAIM, BatchClaimWorker
from tests.support.arq_workers import Tally, claim_worker, enqueue_numbered
from tests.support.helpers import wait_for


async def test_the_claim_takes_due_free_jobs_in_order_up_to_the_limit(redis: Redis, prefix: str) -> None:
    queue = f"{prefix}:queue"
    now = timestamp_ms()
    ids = [f"{prefix}:{n}" for n in range(6)]
    await redis.zadd(
        queue,
        {
            ids[0]: now - 5,
            ids[1]: now - 4,
            ids[2]: now + 60_000,
            ids[3]: now - 3,
            ids[4]: now - 2,
            ids[5]: now - 1,
        },
    )
    await redis.set(in_progress_key_prefix + ids[1], "1")  # held by another worker
    claim = redis.register_script(CLAIM)
    missing = f"{prefix}:gone"  # finished and removed from the queue since it was read

    args: list[str | int] = [now, 55_000, in_progress_key_prefix, 2, "token-1", "arq:job:", 0, missing, *ids]
    reply = await claim(keys=[queue], args=args)

    # looked at: gone, 0 (taken), 1 (held), 2 (not due), 3 (taken, the limit of 2 reached)
    assert int(reply[0]) == 5
    assert [r.decode() for r in reply[1::2]] == [ids[0], ids[3]]
    assert [int(float(s)) for s in reply[2::2]] == [now - 5, now - 3]
    for job_id in (ids[0], ids[3]):
        assert 50_000 < await redis.pttl(in_progress_key_prefix + job_id) <= 55_000
    for job_id in (ids[2], ids[4], ids[5]):
        assert not await redis.exists(in_progress_key_prefix + job_id)
    # the same call again (redis-py re-sends a command whose reply was lost) gets the same jobs
    assert await claim(keys=[queue], args=args) == reply
    # any other call finds them held
    other = await claim(
        keys=[queue], args=[now, 55_000, in_progress_key_prefix, 2, "token-2", "arq:job:", 0, ids[0], ids[3]]
    )
    assert other == [2]


async def _finish(worker: BatchClaimWorker) -> None:
    await asyncio.gather(*worker.tasks.values())
    await worker.close()


async def test_racing_workers_run_each_job_once_within_their_slots(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    pool, queue = arq_pool
    ids = await enqueue_numbered(pool, prefix, queue, 300)
    tallies = [Tally() for _ in range(3)]
    workers = [claim_worker(pool, queue, t.job, max_jobs=4, poll_delay=0.01, burst=True) for t in tallies]
    await asyncio.wait_for(asyncio.gather(*(w.main() for w in workers)), timeout=60)
    for w in workers:
        await w.close()
    runs = sum((t.runs for t in tallies), Counter())
    assert runs == Counter(dict.fromkeys(ids, 1))
    assert all(t.most <= 4 for t in tallies)
    assert sum(1 for t in tallies if t.runs) >= 2  # the work was shared
    assert await pool.zcard(queue) == 0


async def test_a_worker_told_to_stop_claims_nothing_more(arq_pool: tuple[ArqRedis, str], prefix: str) -> None:
    pool, queue = arq_pool
    ids = await enqueue_numbered(pool, prefix, queue, 20)
    gate = asyncio.Event()
    started: list[str] = []

    async def held(ctx: dict[str, Any], n: int) -> None:
        started.append(ctx["job_id"])
        await gate.wait()

    worker = claim_worker(pool, queue, held, poll_delay=30)
    claiming = asyncio.create_task(worker.start_jobs([i.encode() for i in ids]))
    await wait_for(lambda: len(started) == 3, poll_s=0.005)
    assert not claiming.done()  # every slot busy: waiting for one, ids left
    worker.allow_pick_jobs = False
    gate.set()
    await asyncio.wait_for(claiming, timeout=10)
    await _finish(worker)
    assert sorted(started) == sorted(ids[:3])
    held_keys = [i for i in ids if await pool.exists(in_progress_key_prefix + i)]
    assert held_keys == []  # the three finished; nothing else was claimed


async def test_a_worker_busy_for_long_returns_for_its_heartbeat(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """Slots busy for long must not keep arq's poll loop from its heartbeat (the health-check key)."""
    pool, queue = arq_pool
    ids = await enqueue_numbered(pool, prefix, queue, 20)
    gate = asyncio.Event()

    async def held(ctx: dict[str, Any], n: int) -> None:
        await gate.wait()

    worker = claim_worker(pool, queue, held, poll_delay=0.2, health_check_interval=1)
    await asyncio.wait_for(worker.start_jobs([i.encode() for i in ids]), timeout=5)
    assert worker.job_counter == 3
    gate.set()
    await _finish(worker)


async def test_after_a_poll_delay_it_returns_with_a_slot_free(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """So that arq reads the queue again at once: returning full would make it sleep a poll delay."""
    pool, queue = arq_pool
    ids = await enqueue_numbered(pool, prefix, queue, 60)

    async def slow(ctx: dict[str, Any], n: int) -> None:
        await asyncio.sleep(0.05)

    worker = claim_worker(pool, queue, slow, poll_delay=0.2)
    await asyncio.wait_for(worker.start_jobs([i.encode() for i in ids]), timeout=5)
    assert worker.job_counter < worker.max_jobs
    assert 3 < len(worker.tasks) < len(ids)  # it went on as slots freed, and stopped part-way
    await _finish(worker)


async def test_a_running_jobs_in_progress_key_is_a_lease_renewed_until_it_ends(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """A job running three times its lease keeps its in-progress key (no other worker may take it over);
    the key goes when the job ends."""
    pool, queue = arq_pool
    (job_id,) = await enqueue_numbered(pool, prefix, queue, 1)
    release, started = asyncio.Event(), asyncio.Event()

    async def long(ctx: dict[str, Any], n: int) -> None:
        started.set()
        await release.wait()

    worker = claim_worker(pool, queue, long, poll_delay=0.05, lease_s=0.6)
    main = asyncio.create_task(worker.main())
    try:
        await asyncio.wait_for(started.wait(), 5)
        key = in_progress_key_prefix + job_id
        deadline = asyncio.get_running_loop().time() + 1.8
        lowest = 600
        while asyncio.get_running_loop().time() < deadline:
            ttl = await pool.pttl(key)
            assert ttl > 0, "the lease lapsed while the job ran"
            lowest = min(lowest, ttl)
            await asyncio.sleep(0.05)
        assert lowest > 200, "renewed every lease / 3, so never near its end"
        release.set()

        async def gone() -> bool:
            return not await pool.exists(key)

        await wait_for(gone, what="the in-progress key to go")
    finally:
        release.set()
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await main
        await worker.close()


async def test_a_job_whose_key_lapsed_while_it_runs_here_is_not_claimed_here_again(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """Its in-progress key gone (Redis was away longer than the lease): the job is not started a
    second time in the same worker (two tasks of one arq job make arq drop it), and the renewal
    takes the key back."""
    pool, queue = arq_pool
    (job_id,) = await enqueue_numbered(pool, prefix, queue, 1)
    release, started = asyncio.Event(), asyncio.Event()
    runs = 0

    async def long(ctx: dict[str, Any], n: int) -> None:
        nonlocal runs
        runs += 1
        started.set()
        await release.wait()

    worker = claim_worker(pool, queue, long, poll_delay=0.05, lease_s=0.6)
    main = asyncio.create_task(worker.main())
    try:
        await asyncio.wait_for(started.wait(), 5)
        key = in_progress_key_prefix + job_id
        token = await pool.get(key)
        await pool.delete(key)  # lapsed: the job is still due in the queue and held by no one

        async def taken_back() -> bool:
            return bool(await pool.get(key) == token)

        polls = 0
        poll_iteration = worker._poll_iteration

        async def counted() -> None:
            nonlocal polls
            polls += 1
            await poll_iteration()

        worker._poll_iteration = counted  # type: ignore[method-assign]
        await wait_for(taken_back, what="the renewal to take the key back")
        await wait_for(lambda: polls >= 6, what="six polls")  # each would have claimed it again
        assert runs == 1
        release.set()

        async def gone() -> bool:
            return not await pool.exists(key) and not await pool.exists(f"arq:job:{job_id}")

        await wait_for(gone, what="the job to finish")
        assert runs == 1
    finally:
        release.set()
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await main
        await worker.close()


async def test_with_a_poll_delay_of_0_it_claims_and_runs_every_job(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """The first claim comes before the hand-back deadline, which a poll delay of 0 has already passed."""
    pool, queue = arq_pool
    ids = await enqueue_numbered(pool, prefix, queue, 10)
    tally = Tally()
    worker = claim_worker(pool, queue, tally.job, poll_delay=0, burst=True)
    await asyncio.wait_for(worker.main(), timeout=10)
    await worker.close()
    assert tally.runs == Counter(dict.fromkeys(ids, 1))


async def test_with_cron_jobs_they_are_enqueued_while_every_slot_is_busy(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """arq enqueues cron jobs at every poll: a worker waiting for a slot hands back to it within a poll delay."""
    pool, queue = arq_pool
    await enqueue_numbered(pool, prefix, queue, 2)
    release = asyncio.Event()

    async def held(ctx: dict[str, Any], n: int = 0) -> None:
        await release.wait()

    cron_id = f"{prefix}:cron"
    tick = cron(held, name="tick", run_at_startup=True, job_id=cron_id)
    worker = claim_worker(pool, queue, held, max_jobs=1, poll_delay=0.05, cron_jobs=[tick])
    main = asyncio.create_task(worker.main())
    try:

        async def cron_enqueued() -> bool:
            return await pool.zscore(queue, cron_id) is not None

        await wait_for(cron_enqueued, timeout_s=5, what="the cron job in the queue")
        assert worker.job_counter == 1
    finally:
        release.set()
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await main
        await worker.close()


async def test_its_signature_is_arqs_with_its_own_options() -> None:
    """arq's ``create_worker`` passes a settings class only what the worker's signature names."""
    parameters = inspect.signature(BatchClaimWorker).parameters
    assert list(parameters) == [
        *inspect.signature(Worker).parameters,
        "gate",
        "lease_s",
        "wake_ups",
        "direct",
    ]
    job = func(Tally().job, name="job")
    settings: dict[str, Any] = {"functions": [job], "max_jobs": 7, "lease_s": 3.0, "not_an_option": 1}
    worker = BatchClaimWorker(**{k: v for k, v in settings.items() if k in parameters}, handle_signals=False)
    assert (worker.max_jobs, worker.lease_ms) == (7, 3000)


async def test_with_wake_ups_a_job_scheduled_ahead_runs_at_its_time_not_at_the_next_poll(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """A job due 0.3 s after the worker's first poll runs at its time (never before), not at the
    next poll 10 s later; without wake-ups it waits for that poll."""
    pool, queue = arq_pool
    started: dict[str, int] = {}

    async def job(ctx: dict[str, Any], n: int) -> None:
        started[ctx["job_id"]] = timestamp_ms()

    for wake_ups in (True, False):
        job_id = f"{prefix}:{wake_ups}"
        await pool.enqueue_job("job", 0, _job_id=job_id, _queue_name=queue, _defer_by=0.3)
        due_ms = int(await pool.zscore(queue, job_id) or 0)
        worker = claim_worker(pool, queue, job, poll_delay=10.0, wake_ups=wake_ups)
        main = asyncio.create_task(worker.main())
        try:
            if wake_ups:
                await wait_for(partial(operator.contains, started, job_id), timeout_s=5, what="its start")
                assert due_ms <= started[job_id] < due_ms + 1000
            else:
                await asyncio.sleep(1.0)  # well past its time: it waits for the poll 10 s on
                assert job_id not in started
        finally:
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await main
            await worker.close()
