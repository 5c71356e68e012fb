"""The direct lane (:mod:`schemas.jobqueue.lane`): callq's jobs run without arq's bookkeeping and
leave no arq key behind; arq's own jobs still run through arq.

Driven with a stand-in job function (the lane knows nothing of callq's jobs), on a real Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import retry_key_prefix
from arq.utils import timestamp_ms
from redis.asyncio import Redis

from schemas.jobqueue.lane import RELEASE, DirectLane
from schemas.jobqueue.names import FUNCTION, QueueNames
from schemas.jobqueue.payload import dumps, loads
from schemas.jobqueue.pool import open_pool
from schemas.jobqueue.runner import Again, QueueSettings, QueueWorker
from schemas.store.writegate import WriteGate
from tests.support.helpers import wait_for

Job = Callable[[str], Awaitable[Again | None]]


async def _nothing() -> None:
    return None


@pytest.fixture
async def make_worker(redis_url: str, prefix: str) -> AsyncIterator[Callable[..., Awaitable[QueueWorker]]]:
    """Queue workers on the test's prefix, each on its own pool (closed with the worker)."""
    made: list[QueueWorker] = []

    async def make(job: Job, **settings: Any) -> QueueWorker:
        names = QueueNames(prefix)
        options: dict[str, Any] = {"concurrency": 4, "poll_delay_s": 0.02, "handle_signals": False}
        options.update(settings)
        worker = QueueWorker(
            redis=await open_pool(redis_url, names),
            names=names,
            job=job,
            settings=QueueSettings(**options),
            on_startup=_nothing,
            on_shutdown=_nothing,
            gate=WriteGate(),
        )
        made.append(worker)
        return worker

    yield make
    for worker in made:
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await worker.close()


async def _arq_keys(redis: Redis, prefix: str) -> list[str]:
    return sorted([key.decode() async for key in redis.scan_iter(match=f"arq:*:{prefix}:*")])


async def _running(worker: QueueWorker) -> asyncio.Task[None]:
    return asyncio.create_task(worker.run())


async def _stop(worker: QueueWorker, task: asyncio.Task[None]) -> None:
    worker.stop_now()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await worker.close()


async def test_a_done_job_runs_without_arqs_bookkeeping_and_leaves_no_arq_key(
    redis: Redis, prefix: str, make_worker: Callable[..., Awaitable[QueueWorker]]
) -> None:
    """A job admitted with arq's job key (before the upgrade) and one without both run once, with no
    try counter made for them, and leave nothing of arq's behind: not the claim, not the job key."""
    names = QueueNames(prefix)
    now = timestamp_ms()
    await redis.zadd(names.queue, {names.member("old"): now - 2, names.member("new"): now - 1})
    await redis.set(names.job("old"), '["old",1]')  # as admission wrote it before
    runs: list[str] = []
    try_counters = 0

    async def job(job_id: str) -> Again | None:
        nonlocal try_counters
        runs.append(job_id)
        try_counters += int(await redis.exists(retry_key_prefix + names.member(job_id)))
        return None

    worker = await make_worker(job, burst=True)
    await asyncio.wait_for(worker.run(), timeout=10)
    await worker.close()
    assert sorted(runs) == ["new", "old"]
    assert try_counters == 0
    assert await redis.zcard(names.queue) == 0
    assert await _arq_keys(redis, prefix) == []


async def test_a_done_job_takes_the_try_counter_a_dead_0_2_worker_left(
    redis: Redis, prefix: str, make_worker: Callable[..., Awaitable[QueueWorker]]
) -> None:
    """A job a 0.2 worker was running when it died (its job key and try counter, made by arq's
    ``run_job``, left behind) ends here without either left over (the red team's upgrade case)."""
    names = QueueNames(prefix)
    await redis.zadd(names.queue, {names.member("orphan"): timestamp_ms() - 1})
    await redis.set(names.job("orphan"), '["orphan",1]')
    await redis.set(names.retry("orphan"), 1, ex=88400)
    runs: list[str] = []

    async def job(job_id: str) -> Again | None:
        runs.append(job_id)
        return None

    worker = await make_worker(job, burst=True)
    await asyncio.wait_for(worker.run(), timeout=10)
    await worker.close()
    assert runs == ["orphan"]
    assert await _arq_keys(redis, prefix) == []


async def test_again_keeps_the_stores_score_again_in_s_moves_it_and_each_claim_goes(
    redis: Redis, prefix: str, make_worker: Callable[..., Awaitable[QueueWorker]]
) -> None:
    """``Again()``: the score the store set stays; ``Again(in_s)``: the entry moves to in_s from the
    job's end (arq's ``Retry(defer)``). Either way the claim goes and no arq key is left."""
    names = QueueNames(prefix)
    now = timestamp_ms()
    put_back_at = now + 60_000
    await redis.zadd(names.queue, {names.member("kept"): now - 2, names.member("deferred"): now - 1})
    ended: dict[str, int] = {}

    async def job(job_id: str) -> Again | None:
        ended[job_id] = timestamp_ms()
        if job_id == "kept":
            await redis.zadd(names.queue, {names.member(job_id): put_back_at}, xx=True)  # as a put-back
            return Again()
        return Again(in_s=30)

    worker = await make_worker(job)
    task = await _running(worker)
    try:

        async def released() -> bool:
            return len(ended) == 2 and await _arq_keys(redis, prefix) == []

        await wait_for(released, what="both claims released")
    finally:
        await _stop(worker, task)
    assert await redis.zscore(names.queue, names.member("kept")) == put_back_at
    deferred = await redis.zscore(names.queue, names.member("deferred"))
    assert deferred is not None
    assert ended["deferred"] + 30_000 <= deferred < ended["deferred"] + 31_000
    assert await _arq_keys(redis, prefix) == []


async def test_a_job_cut_off_by_an_immediate_stop_stays_queued_with_its_claim_released(
    redis: Redis, prefix: str, make_worker: Callable[..., Awaitable[QueueWorker]]
) -> None:
    """Cancelled mid-run: the job stays in the queue at its score for any worker, its claim goes at once."""
    names = QueueNames(prefix)
    due = timestamp_ms() - 1
    await redis.zadd(names.queue, {names.member("cut"): due})
    started = asyncio.Event()

    async def job(job_id: str) -> Again | None:
        started.set()
        await asyncio.Event().wait()
        return None

    worker = await make_worker(job)
    task = await _running(worker)
    await asyncio.wait_for(started.wait(), timeout=5)
    assert await redis.exists(names.in_progress("cut"))
    await _stop(worker, task)
    assert await redis.zscore(names.queue, names.member("cut")) == due
    assert await _arq_keys(redis, prefix) == []


async def test_a_job_arq_enqueued_itself_still_runs_through_arq(
    redis: Redis, prefix: str, make_worker: Callable[..., Awaitable[QueueWorker]]
) -> None:
    """A member that is not a callq job id runs through arq's ``run_job`` (its try counter and job
    key, its ``finish_job``), and leaves nothing behind either."""
    names = QueueNames(prefix)
    arq_job_id = f"own:{prefix}:1"  # not under the prefix: not a callq job
    arq = ArqRedis(redis.connection_pool, job_serializer=dumps, job_deserializer=loads)
    assert await arq.enqueue_job(FUNCTION, "argument", _job_id=arq_job_id, _queue_name=names.queue)
    seen: list[tuple[str, int]] = []

    async def job(job_id: str) -> Again | None:
        seen.append((job_id, int(await redis.exists(retry_key_prefix + arq_job_id))))
        return None

    worker = await make_worker(job, burst=True)
    await asyncio.wait_for(worker.run(), timeout=10)
    await worker.close()
    assert seen == [("argument", 1)]  # arq's function got arq's argument; arq counted the try
    assert await redis.zcard(names.queue) == 0
    assert await _arq_keys(redis, prefix) == []


async def test_a_worker_that_stopped_mid_job_has_it_taken_over_after_its_lease(
    redis: Redis, prefix: str, make_worker: Callable[..., Awaitable[QueueWorker]]
) -> None:
    """A worker frozen mid-job (its claim no longer renewed, as a killed one) keeps the job from
    others for its lease, no longer: then another worker takes it."""
    names = QueueNames(prefix)
    await redis.zadd(names.queue, {names.member("held"): timestamp_ms() - 1})
    started: dict[str, float] = {}
    frozen = asyncio.Event()
    loop = asyncio.get_running_loop()

    def job_of(name: str) -> Job:
        async def job(job_id: str) -> Again | None:
            started.setdefault(name, loop.time())
            if name == "first":
                await frozen.wait()
            return None

        return job

    first = await make_worker(job_of("first"), lease_s=0.5)
    first_task = await _running(first)
    second: QueueWorker | None = None
    second_task: asyncio.Task[None] | None = None
    try:
        await wait_for(lambda: "first" in started, what="the first worker's start")
        renewing = first._arq._renewing
        assert renewing is not None
        renewing.cancel()  # it stops renewing, as a worker killed mid-job
        first.stop_taking_jobs()
        second = await make_worker(job_of("second"), lease_s=0.5)
        second_task = await _running(second)
        await wait_for(lambda: "second" in started, what="the takeover")
        assert started["second"] - started["first"] >= 0.45
    finally:
        frozen.set()
        await _stop(first, first_task)
        if second is not None and second_task is not None:
            await _stop(second, second_task)


async def test_a_release_goes_only_with_its_claims_token_and_keeps_an_entry_moved_since(
    redis: Redis, prefix: str
) -> None:
    """``RELEASE``: a done job's entry goes only at the score it was claimed at (a redial or put-back
    since keeps it), and only an in-progress key still holding the claim's token is deleted."""
    names = QueueNames(prefix)
    a, b = names.member("a"), names.member("b")
    await redis.zadd(names.queue, {a: 100, b: 500})
    await redis.set(names.in_progress("a"), "mine")
    await redis.set(names.in_progress("b"), "someone else's")
    await redis.set(names.job("a"), "[]")
    release = redis.register_script(RELEASE)
    releases = [a, "mine", "done", "100", b, "mine", "done", "100"]
    await release(keys=[names.queue], args=DirectLane.script_args(releases))
    assert await redis.zrange(names.queue, 0, -1) == [b.encode()]
    assert not await redis.exists(names.in_progress("a"), names.job("a"))
    assert await redis.get(names.in_progress("b")) == b"someone else's"
    await release(keys=[names.queue], args=DirectLane.script_args([b, "mine", "at", "900"]))
    assert await redis.zscore(names.queue, b) == 900
    assert await redis.get(names.in_progress("b")) == b"someone else's"
