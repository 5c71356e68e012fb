"""The queue (:mod:`schemas.jobqueue`) against a private ``redis-server``: arq's keys that are one for
every queue (the abort set), and a Redis that refuses every write."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest
from arq.connections import RedisSettings, create_pool
from arq.constants import abort_jobs_ss
from arq.utils import timestamp_ms
from redis.exceptions import OutOfMemoryError

from ops.redis_server import RedisServer
from tests.support.arq_workers import claim_worker, enqueue_numbered, enqueue_one, recorder
from tests.support.helpers import wait_for


async def test_with_aborts_an_abort_reaches_a_running_job_while_every_slot_is_busy(
    tmp_path: Path, prefix: str
) -> None:
    """arq passes aborts on at every poll: a worker waiting for a slot hands back to it within a poll delay.

    A private redis-server: arq's abort set (``arq:abort``) is one key for every queue."""
    with RedisServer(tmp_path) as server:
        queue = f"{prefix}:queue"
        pool = await create_pool(RedisSettings.from_dsn(server.url), default_queue_name=queue)
        first, second = await enqueue_numbered(pool, prefix, queue, 2)
        started: list[str] = []
        cancelled: list[str] = []

        async def held(ctx: dict[str, Any], n: int) -> None:
            started.append(ctx["job_id"])
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(ctx["job_id"])
                raise

        worker = claim_worker(pool, queue, held, max_jobs=1, poll_delay=0.05, allow_abort_jobs=True)
        main = asyncio.create_task(worker.main())
        try:
            await wait_for(lambda: started == [first], poll_s=0.005)
            await pool.zadd(abort_jobs_ss, {first: timestamp_ms()})
            await wait_for(
                lambda: cancelled == [first] and started == [first, second], timeout_s=5, poll_s=0.005
            )
        finally:
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await main
            with contextlib.suppress(asyncio.CancelledError):
                await worker.close()  # it cancels the second job


async def test_run_job_lets_a_refused_write_of_its_first_bookkeeping_through(
    tmp_path: Path, prefix: str
) -> None:
    """callq releases a job when Redis refuses arq's try counter: arq's ``run_job`` must raise, not swallow, it."""
    with RedisServer(tmp_path) as server:
        queue = f"{prefix}:queue"
        pool = await create_pool(RedisSettings.from_dsn(server.url), default_queue_name=queue)
        try:
            job_id = f"{prefix}:1"
            score = await enqueue_one(pool, queue, "ok", job_id)
            await pool.config_set("maxmemory", 1)  # noeviction: every write that may grow memory is refused
            worker = recorder(pool, queue)
            with pytest.raises(OutOfMemoryError):
                await worker.run_job(job_id, score)
            assert worker.finished == []
        finally:
            await pool.config_set("maxmemory", 0)
            await pool.aclose()
