"""The batched claim (:mod:`schemas.jobqueue.worker`): arq's semantics, one round trip per batch.

Run with plain arq jobs (not callq's), so that what is checked is the dispatch alone: every job
runs once however many workers race for it, never more at a time than ``max_jobs``, and a worker
told to stop picking jobs claims nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker, func
from redis.asyncio import Redis

from schemas.jobqueue.worker import CLAIM, BatchClaimWorker
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

    args: list[str | int] = [now, 55_000, in_progress_key_prefix, 2, "token-1", missing, *ids]
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
        keys=[queue], args=[now, 55_000, in_progress_key_prefix, 2, "token-2", ids[0], ids[3]]
    )
    assert other == [2]


def test_the_arq_internals_it_relies_on_are_there() -> None:
    """An arq upgrade that changes them must fail here, not in production."""
    assert "start_jobs" in Worker.__dict__
    assert list(inspect.signature(Worker.start_jobs).parameters) == ["self", "job_ids"]
    assert list(inspect.signature(Worker.run_job).parameters) == ["self", "job_id", "score"]
    assert callable(Worker._release_sem_dec_counter_on_complete)
    source = inspect.getsource(Worker.__init__)
    assert "self.sem = asyncio.BoundedSemaphore(max_jobs + 1)" in source
    for attribute in (
        "self.job_counter",
        "self.tasks",
        "self.allow_pick_jobs",
        "self.in_progress_timeout_s",
        "self.poll_delay_s",
        "self.health_check_interval",
    ):
        assert attribute in source
    # the lease, the heartbeat as the Redis-full probe, and finish_job sent until Redis takes it
    finish_job = ["self", "job_id", "finish", "result_data", "result_timeout_s", "keep_result_forever"]
    assert list(inspect.signature(Worker.finish_job).parameters) == [
        *finish_job,
        "incr_score",
        "keep_in_progress",
    ]
    assert list(inspect.signature(Worker.record_health).parameters) == ["self"]
    assert "await self.record_health()" in inspect.getsource(Worker.heart_beat)
    assert "await self.heart_beat()" in inspect.getsource(Worker._poll_iteration)
    health = inspect.getsource(Worker.record_health)
    assert "self._last_health_check = now_ts" in health and "self.pool.psetex(" in health
    run_job = inspect.getsource(Worker.run_job)
    assert "await asyncio.wait_for(task, timeout_s)" in run_job
    assert "await asyncio.shield(\n            self.finish_job(" in run_job


class Tally:
    """What the test jobs did: runs per job and the most running at once."""

    def __init__(self) -> None:
        self.runs: Counter[str] = Counter()
        self.running = 0
        self.most = 0

    async def job(self, ctx: dict[str, Any], n: int) -> None:
        self.running += 1
        self.most = max(self.most, self.running)
        await asyncio.sleep(0.001 * (n % 5))
        self.runs[ctx["job_id"]] += 1
        self.running -= 1


@pytest.fixture
async def arq_pool(redis_url: str, prefix: str) -> AsyncIterator[tuple[ArqRedis, str]]:
    """arq's pool, and a queue under the test's prefix."""
    queue = f"{prefix}:queue"
    pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=queue)
    yield pool, queue
    await pool.aclose()


def _worker(
    pool: ArqRedis, queue: str, job: Any, *, max_jobs: int = 3, poll_delay: float, **options: Any
) -> BatchClaimWorker:
    return BatchClaimWorker(
        functions=[func(job, name="job")],
        redis_pool=pool,
        queue_name=queue,
        max_jobs=max_jobs,
        poll_delay=poll_delay,
        handle_signals=False,
        keep_result=0,
        health_check_key=f"{queue}:health",
        **options,
    )


async def _enqueue(pool: ArqRedis, prefix: str, queue: str, n: int) -> list[str]:
    ids = [f"{prefix}:{i}" for i in range(n)]
    for i, job_id in enumerate(ids):
        assert await pool.enqueue_job("job", i, _job_id=job_id, _queue_name=queue) is not None
    return ids


async def _finish(worker: BatchClaimWorker) -> None:
    await asyncio.gather(*worker.tasks.values())
    await worker.close()


async def test_racing_workers_run_each_job_once_within_their_slots(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    pool, queue = arq_pool
    ids = await _enqueue(pool, prefix, queue, 300)
    tallies = [Tally() for _ in range(3)]
    workers = [_worker(pool, queue, t.job, max_jobs=4, poll_delay=0.01, burst=True) for t in tallies]
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
    ids = await _enqueue(pool, prefix, queue, 20)
    gate = asyncio.Event()
    started: list[str] = []

    async def held(ctx: dict[str, Any], n: int) -> None:
        started.append(ctx["job_id"])
        await gate.wait()

    worker = _worker(pool, queue, held, poll_delay=30)
    claiming = asyncio.create_task(worker.start_jobs([i.encode() for i in ids]))
    await _until(lambda: len(started) == 3)
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
    ids = await _enqueue(pool, prefix, queue, 20)
    gate = asyncio.Event()

    async def held(ctx: dict[str, Any], n: int) -> None:
        await gate.wait()

    worker = _worker(pool, queue, held, poll_delay=0.2, health_check_interval=1)
    await asyncio.wait_for(worker.start_jobs([i.encode() for i in ids]), timeout=5)
    assert worker.job_counter == 3
    gate.set()
    await _finish(worker)


async def test_after_a_poll_delay_it_returns_with_a_slot_free(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """So that arq reads the queue again at once: returning full would make it sleep a poll delay."""
    pool, queue = arq_pool
    ids = await _enqueue(pool, prefix, queue, 60)

    async def slow(ctx: dict[str, Any], n: int) -> None:
        await asyncio.sleep(0.05)

    worker = _worker(pool, queue, slow, poll_delay=0.2)
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
    (job_id,) = await _enqueue(pool, prefix, queue, 1)
    release, started = asyncio.Event(), asyncio.Event()

    async def long(ctx: dict[str, Any], n: int) -> None:
        started.set()
        await release.wait()

    worker = _worker(pool, queue, long, poll_delay=0.05, lease_s=0.6)
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


async def _until(predicate: Any, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.005)
