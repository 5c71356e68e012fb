"""arq's internals that callq's worker relies on, each exercised on arq's own ``Worker``.

:mod:`schemas.jobqueue.worker` subclasses arq's ``Worker`` and :mod:`schemas.jobqueue.runner` drives
it; what they assume of arq beyond its documented API is run here, so that an arq release that
changes one fails here rather than in production. The other side (callq's worker keeps arq's
semantics) is arq's own test suite run against it: ``make test-arq``.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.constants import in_progress_key_prefix
from arq.worker import Worker, func
from redis.exceptions import ConnectionError as RedisConnectionError

from tests.support.arq_workers import again, enqueue_one, ok, recorder, slow
from tests.support.helpers import wait_for


async def test_each_poll_hands_start_jobs_the_due_ids_in_queue_order(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """``_poll_iteration`` calls ``start_jobs`` with the due ids as bytes, earliest first."""
    pool, queue = arq_pool
    ids = [f"{prefix}:{n}" for n in range(4)]
    for job_id in ids:
        await enqueue_one(pool, queue, "ok", job_id)
    now = await enqueue_one(pool, queue, "ok", f"{prefix}:now")
    await pool.zadd(queue, {ids[2]: now - 3000, ids[0]: now - 2000, ids[1]: now - 1000, ids[3]: now + 60_000})
    await pool.zrem(queue, f"{prefix}:now")
    worker = recorder(pool, queue)
    await worker._poll_iteration()
    assert worker.started == [[ids[2].encode(), ids[0].encode(), ids[1].encode()]]


async def test_no_poll_calls_start_jobs_while_every_slot_is_counted_busy_or_picking_is_off(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """arq's loop reads ``job_counter`` against ``max_jobs`` and ``allow_pick_jobs`` before each claim."""
    pool, queue = arq_pool
    await enqueue_one(pool, queue, "ok", f"{prefix}:1")
    worker = recorder(pool, queue, max_jobs=2)
    worker.job_counter = 2
    await worker._poll_iteration()
    assert worker.started == []
    worker.job_counter = 1
    await worker._poll_iteration()
    assert len(worker.started) == 1
    worker.allow_pick_jobs = False
    await worker._poll_iteration()
    assert len(worker.started) == 1
    assert worker.health_calls == 3  # the heartbeat runs at every poll, claiming or not


async def test_the_semaphore_holds_one_more_than_max_jobs_and_the_completion_callback_frees_a_slot() -> None:
    """``sem`` never blocks a claim made with a slot free; ``_release_sem_dec_counter_on_complete`` undoes one."""
    worker = Worker(functions=[func(ok, name="ok")], queue_name="unused", max_jobs=2, handle_signals=False)
    for _ in range(3):
        await asyncio.wait_for(worker.sem.acquire(), timeout=1)
    assert worker.sem.locked()
    worker.job_counter = 2
    worker._release_sem_dec_counter_on_complete()
    assert worker.job_counter == 1
    assert not worker.sem.locked()


async def test_a_poll_drops_finished_tasks_and_raises_their_errors(arq_pool: tuple[ArqRedis, str]) -> None:
    """Tasks put in ``tasks`` are reaped by arq's loop, and a job's Redis error ends the worker's ``main``."""
    pool, queue = arq_pool
    worker = recorder(pool, queue)
    release = asyncio.Event()
    pending = asyncio.create_task(release.wait())
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    worker.tasks.update({"pending": pending, "done": done})
    await worker._poll_iteration()
    assert list(worker.tasks) == ["pending"]

    async def lost() -> None:
        raise RedisConnectionError("gone")

    failed = asyncio.create_task(lost())
    await asyncio.wait({failed})
    worker.tasks["failed"] = failed
    with pytest.raises(RedisConnectionError):
        await worker._poll_iteration()
    release.set()
    await pending


async def test_run_job_hands_its_result_to_finish_job_with_these_arguments(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """``run_job(job_id, score)`` ends in ``self.finish_job`` with the seven arguments callq's override takes."""
    pool, queue = arq_pool
    worker = recorder(pool, queue, ok, again)
    done, retried = f"{prefix}:done", f"{prefix}:retried"
    await worker.run_job(done, await enqueue_one(pool, queue, "ok", done))
    await worker.run_job(retried, await enqueue_one(pool, queue, "again", retried))
    first, second = worker.finished
    assert first["job_id"] == done and first["finish"] is True and first["incr_score"] is None
    assert isinstance(first["result_data"], bytes) and first["keep_in_progress"] is None
    assert second["job_id"] == retried and second["finish"] is False and second["incr_score"] >= 5000
    assert await pool.zscore(queue, done) is None  # arq's finish_job did its part
    assert await pool.zscore(queue, retried) is not None


async def test_finish_job_goes_on_when_run_job_is_cancelled(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """arq shields ``finish_job``: callq's, which waits until Redis takes it, outlives a cancelled job task."""
    pool, queue = arq_pool
    worker = recorder(pool, queue)
    worker.finish_released.clear()
    job_id = f"{prefix}:1"
    task = asyncio.create_task(worker.run_job(job_id, await enqueue_one(pool, queue, "ok", job_id)))
    await asyncio.wait_for(worker.finish_entered.wait(), timeout=5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    worker.finish_released.set()

    async def removed() -> bool:
        return await pool.zscore(queue, job_id) is None

    await wait_for(removed, what="the shielded finish_job to remove the job")
    assert [f["job_id"] for f in worker.finished] == [job_id]


async def test_the_functions_own_timeout_is_the_one_that_cuts_a_job(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """callq sets ``func(timeout=...)``: arq's ``run_job`` bounds a job by it, over the worker's ``job_timeout``."""
    pool, queue = arq_pool
    long_enough = recorder(pool, queue, func(slow, timeout=5), job_timeout=0.05)
    job_id = f"{prefix}:1"
    await long_enough.run_job(job_id, await enqueue_one(pool, queue, "slow", job_id))
    assert (long_enough.jobs_complete, long_enough.jobs_failed) == (1, 0)
    too_short = recorder(pool, queue, func(slow, timeout=0.05), job_timeout=5)
    job_id = f"{prefix}:2"
    await too_short.run_job(job_id, await enqueue_one(pool, queue, "slow", job_id))
    assert (too_short.jobs_complete, too_short.jobs_failed) == (0, 1)


async def test_the_heartbeat_writes_once_per_interval_and_again_when_last_health_check_is_reset(
    arq_pool: tuple[ArqRedis, str],
) -> None:
    """callq's heartbeat (the Redis-full probe) resets ``_last_health_check`` to force a write, and reads a
    change of it as "written"."""
    pool, queue = arq_pool
    worker = recorder(pool, queue, health_check_interval=3600)
    health = f"{queue}:health"
    await worker.record_health()
    written_at = worker._last_health_check
    assert written_at > 0 and await pool.exists(health)
    await pool.delete(health)
    await worker.record_health()
    assert worker._last_health_check == written_at and not await pool.exists(health)
    worker._last_health_check = 0
    await worker.record_health()
    assert worker._last_health_check >= written_at and await pool.exists(health)


async def test_arqs_own_claim_leaves_a_job_whose_in_progress_key_holds_a_token_and_finish_job_deletes_it(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """callq's claim writes a token where arq writes ``1``: arq reads only the key's existence."""
    pool, queue = arq_pool
    job_id = f"{prefix}:1"
    await enqueue_one(pool, queue, "ok", job_id)
    key = in_progress_key_prefix + job_id
    await pool.set(key, "a1b2c3d4e5f60718:1")
    worker = Worker(functions=[func(ok)], redis_pool=pool, queue_name=queue, handle_signals=False)
    await worker.start_jobs([job_id.encode()])
    assert worker.tasks == {} and worker.job_counter == 0
    await worker.finish_job(job_id, True, None, None, False, None, None)
    assert not await pool.exists(key)
    assert await pool.zscore(queue, job_id) is None


async def test_a_graceful_stop_stops_picking_jobs_then_ends_async_run(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """The runner's graceful stop: ``handle_sig_wait_for_completion`` stops picking, waits, then ends ``async_run``."""
    pool, queue = arq_pool
    release = asyncio.Event()
    for n in range(2):
        await enqueue_one(pool, queue, "held", f"{prefix}:{n}")
    worker = _held_worker(pool, queue, release, job_completion_wait=30)
    running = asyncio.create_task(worker.async_run())
    await wait_for(lambda: len(worker.tasks) == 1, poll_s=0.005)
    worker.handle_sig_wait_for_completion(signal.SIGTERM)
    assert worker.allow_pick_jobs is False
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, timeout=10)
    assert worker.jobs_complete == 1  # the job running finished, the other was never picked
    assert await pool.zcard(queue) == 1


async def test_an_immediate_stop_cancels_the_jobs_and_ends_async_run(
    arq_pool: tuple[ArqRedis, str], prefix: str
) -> None:
    """The runner's immediate stop: ``handle_sig`` cancels the jobs (arq leaves them queued) and ends ``async_run``."""
    pool, queue = arq_pool
    job_id = f"{prefix}:1"
    await enqueue_one(pool, queue, "held", job_id)
    worker = _held_worker(pool, queue, asyncio.Event())
    running = asyncio.create_task(worker.async_run())
    await wait_for(lambda: len(worker.job_tasks) == 1, poll_s=0.005)
    jobs = list(worker.job_tasks.values())
    worker.handle_sig(signal.SIGTERM)
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, timeout=10)
    await asyncio.wait(list(worker.tasks.values()))
    assert all(t.cancelled() for t in jobs)
    assert worker.jobs_retried == 1  # arq puts a cancelled job back
    assert await pool.zscore(queue, job_id) is not None


def _held_worker(pool: ArqRedis, queue: str, release: asyncio.Event, **options: Any) -> Worker:
    """An arq worker of one slot whose job ``held`` runs until ``release`` is set."""

    async def held(ctx: dict[str, Any]) -> None:
        await release.wait()

    options = {"max_jobs": 1, "poll_delay": 0.02, "handle_signals": False, **options}
    return Worker(functions=[func(held, name="held")], redis_pool=pool, queue_name=queue, **options)
