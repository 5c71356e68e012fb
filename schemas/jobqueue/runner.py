"""Running callq's job function on arq: the one handle the rest of callq has on an arq worker.

:class:`QueueWorker` builds arq's worker (:class:`~schemas.jobqueue.worker.BatchClaimWorker`) with
callq's settings, runs it through arq's public ``async_run``, and stops it gracefully or at once.
The job function it runs knows nothing of arq: it takes a callq job id and returns :class:`Again`
(run the job again) or None (done).

Why arq's settings are what they are:

- ``poll_delay`` 0.25 s: arq's default 0.5 s adds up to half a second to every due job; a sorted-set
  read every 250 ms is cheap. Between two polls the worker wakes up when the earliest job ahead
  comes due (:class:`~schemas.jobqueue.worker.BatchClaimWorker`'s ``wake_ups``), so a job does not
  wait for the next poll.
- job timeout 7 days, in effect none: arq never cuts a callback job short. Its request is bounded
  by the HTTP client's timeout, and the bookkeeping after it must be written however long Redis takes;
  a timeout there would throw a known result away. A worker that died has its jobs taken over through
  the in-progress key, a lease renewed while the job runs.
- ``max_tries`` disabled (a million): callq counts attempts itself (``max_attempts`` per portal), and
  arq's counter also counts every put-back for closed hours or the rate limit.
- ``keep_result`` 0: the job record holds the outcome; an arq result would be a second copy and
  would block a job id for its lifetime.
- ``queue_read_limit`` 1,000: arq's default (5 × concurrency, at least 100) capped a process at about
  400 jobs/s; the ids read are claimed as slots free up, so reading more holds nothing.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from arq.connections import ArqRedis
from arq.worker import Retry, func
from redis.asyncio import Redis

from schemas.jobqueue.lane import Again, DirectLane, JobFunction
from schemas.jobqueue.names import FUNCTION, QueueNames
from schemas.jobqueue.payload import dumps, loads
from schemas.jobqueue.worker import BatchClaimWorker
from schemas.store.writegate import WriteGate

POLL_DELAY_S = 0.25
JOB_TIMEOUT_S = 7 * 86400
MAX_TRIES = 1_000_000
KEEP_RESULT_S = 0
QUEUE_READ_LIMIT = 1000
HEALTH_CHECK_INTERVAL_S = 10
"""arq refreshes ``{p}:queue:health-check`` this often; readiness checks read it."""


__all__ = ["Again", "JobFunction", "QueueSettings", "QueueWorker"]

Hook = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class QueueSettings:
    """How one worker takes jobs from the queue.

    Attributes:
        concurrency: jobs in flight at once.
        poll_delay_s: how often the queue is read.
        lease_s: how long a claimed job stays claimed without renewal (a dead worker's jobs are
            taken over this long after it stopped renewing).
        shutdown_wait_s: on a graceful stop, how long jobs in flight may take to finish.
        burst: stop once the queue is empty (tests, benchmarks).
        handle_signals: let arq handle SIGTERM/SIGINT (False when the process does it itself).
    """

    concurrency: int
    poll_delay_s: float = POLL_DELAY_S
    lease_s: float = 20.0
    shutdown_wait_s: int = 35
    burst: bool = False
    handle_signals: bool = True


class QueueWorker:
    """An arq worker running callq's job function.

    Args:
        redis: the pool (:func:`schemas.jobqueue.pool.open_pool`).
        names: arq's names of the deployment's jobs.
        job: runs one job by its callq job id.
        settings: how jobs are taken.
        on_startup: called before the first job is taken.
        on_shutdown: called after the last job in flight ended.
        gate: whether Redis takes writes (Redis full), shared with the job function.
    """

    def __init__(
        self,
        *,
        redis: Redis,
        names: QueueNames,
        job: JobFunction,
        settings: QueueSettings,
        on_startup: Hook,
        on_shutdown: Hook,
        gate: WriteGate,
    ) -> None:
        self.names = names
        self._job = job

        async def startup(_ctx: dict[str, Any]) -> None:
            await on_startup()

        async def shutdown(_ctx: dict[str, Any]) -> None:
            await on_shutdown()

        self._arq = BatchClaimWorker(
            functions=[func(self._run, name=FUNCTION, max_tries=MAX_TRIES, timeout=JOB_TIMEOUT_S)],  # type: ignore[arg-type]
            redis_pool=cast(ArqRedis, redis),
            queue_name=names.queue,
            health_check_key=names.health,
            health_check_interval=HEALTH_CHECK_INTERVAL_S,
            job_serializer=dumps,
            job_deserializer=loads,
            poll_delay=settings.poll_delay_s,
            max_jobs=settings.concurrency,
            queue_read_limit=QUEUE_READ_LIMIT,
            job_timeout=JOB_TIMEOUT_S,
            keep_result=KEEP_RESULT_S,
            max_tries=MAX_TRIES,
            burst=settings.burst,
            handle_signals=settings.handle_signals,
            job_completion_wait=settings.shutdown_wait_s,
            on_startup=startup,
            on_shutdown=shutdown,
            log_results=False,
            gate=gate,
            lease_s=settings.lease_s,
            wake_ups=True,
            direct=DirectLane(redis=redis, names=names, job=job, gate=gate),
        )

    async def _run(self, _ctx: dict[str, Any], job_id: str) -> None:
        """arq's way, for a member the direct lane does not take (none of callq's own)."""
        again = await self._job(job_id)
        if again is not None:
            # Retry() leaves the queue score as the store set it; Retry(defer) moves it from now
            raise Retry(defer=again.in_s) if again.in_s is not None else Retry()

    async def run(self) -> None:
        """Take and run jobs until stopped (or, in burst mode, until the queue is empty)."""
        await self._arq.async_run()

    async def close(self) -> None:
        """Wait for the jobs in flight (unless stopped at once), run ``on_shutdown``, close the pool."""
        await self._arq.close()

    def stop_gracefully(self) -> None:
        """Take no more jobs; let those in flight finish (up to ``shutdown_wait_s``); then end :meth:`run`."""
        self._arq.handle_sig_wait_for_completion(signal.SIGTERM)

    def stop_now(self) -> None:
        """Cancel the jobs in flight and end :meth:`run` at once."""
        self._arq.handle_sig(signal.SIGTERM)

    def stop_taking_jobs(self) -> None:
        """Take no more jobs (those in flight go on)."""
        self._arq.allow_pick_jobs = False

    def jobs_in_flight(self) -> dict[str, asyncio.Task[Any]]:
        """The tasks of the jobs running now, by callq job id."""
        return {self.names.job_id(member): task for member, task in self._arq.tasks.items()}
