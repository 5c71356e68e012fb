"""Plain arq jobs and workers for the tests of the queue (:mod:`schemas.jobqueue`): callq's batched-claim
worker and arq's own ``Worker`` run on them, so that what is checked is the queue alone, not callq's jobs."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from arq.connections import ArqRedis
from arq.worker import Retry, Worker, func

from schemas.jobqueue.worker import BatchClaimWorker


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


def claim_worker(
    pool: ArqRedis, queue: str, job: Any, *, max_jobs: int = 3, poll_delay: float, **options: Any
) -> BatchClaimWorker:
    """callq's worker running ``job`` as the function ``job`` on ``queue``, no signals, no results kept."""
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


async def enqueue_numbered(pool: ArqRedis, prefix: str, queue: str, n: int) -> list[str]:
    """``n`` jobs of the function ``job``, ids ``{prefix}:0`` on, argument their number; their ids."""
    ids = [f"{prefix}:{i}" for i in range(n)]
    for i, job_id in enumerate(ids):
        assert await pool.enqueue_job("job", i, _job_id=job_id, _queue_name=queue) is not None
    return ids


async def ok(ctx: dict[str, Any]) -> int:
    """A job that succeeds."""
    return 42


async def again(ctx: dict[str, Any]) -> None:
    """A job that asks arq to run it again in 5 s."""
    raise Retry(defer=5)


async def slow(ctx: dict[str, Any]) -> str:
    """A job that takes 0.3 s."""
    await asyncio.sleep(0.3)
    return "done"


class Recorder(Worker):
    """arq's ``Worker`` noting what arq's loop hands to the methods callq overrides."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.started: list[list[bytes]] = []
        self.finished: list[dict[str, Any]] = []
        self.health_calls = 0
        self.finish_entered = asyncio.Event()
        self.finish_released = asyncio.Event()
        self.finish_released.set()

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        self.started.append(list(job_ids))

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """The parameters :class:`schemas.jobqueue.worker.BatchClaimWorker` overrides it with."""
        self.finish_entered.set()
        await self.finish_released.wait()
        noted = {"finish": finish, "result_data": result_data, "incr_score": incr_score}
        self.finished.append({"job_id": job_id, **noted, "keep_in_progress": keep_in_progress})
        await super().finish_job(
            job_id, finish, result_data, result_timeout_s, keep_result_forever, incr_score, keep_in_progress
        )

    async def record_health(self) -> None:
        self.health_calls += 1
        await super().record_health()


def recorder(pool: ArqRedis, queue: str, *functions: Any, **options: Any) -> Recorder:
    """A :class:`Recorder` of ``functions`` (``ok`` by default) on ``queue``, no signals."""
    return Recorder(
        functions=[func(f) for f in functions or (ok,)],  # a coroutine's name is its own
        redis_pool=pool,
        queue_name=queue,
        handle_signals=False,
        health_check_key=f"{queue}:health",
        **options,
    )


async def enqueue_one(pool: ArqRedis, queue: str, function: str, job_id: str) -> int:
    """Enqueue a job; its queue score."""
    assert await pool.enqueue_job(function, _job_id=job_id, _queue_name=queue) is not None
    score = await pool.zscore(queue, job_id)
    assert score is not None
    return int(score)
