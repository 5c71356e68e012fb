"""Running a worker process: signals, Redis outages, start and stop.

- First SIGTERM/SIGINT: stop taking jobs and intake entries, let requests in flight finish and
  record their outcomes (up to ``shutdown_wait_s``), then exit 0.
- Second signal: exit at once. A request cut off this way has an unknown result; the job is left
  ``running`` and the next worker to take it over ends it ``dead`` with ``OUTCOME_UNKNOWN``.
- Redis unreachable: redis-py retries each command with backoff (``open_pool``); if Redis stays
  away longer, the worker is rebuilt after a growing pause (1 s doubling to 30 s) instead of exiting
  into a supervisor's crash loop. Jobs it held are taken over from arq's queue once Redis is back.
- Redis refusing writes (full, ``MISCONF``, ``READONLY``, ``NOREPLICAS``:
  :func:`schemas.store.errors.write_refusal`): not a lost connection, and not the process's to
  handle: the worker waits it out where it writes (:mod:`schemas.store.writegate`), staying up. A refusal
  that still escapes (a write nobody expected) is treated like a lost Redis: the worker is rebuilt
  after the same pause, logged as ``worker.redis_full`` (or ``worker.redis_refuses_writes``) without a traceback, and never exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Sequence
from typing import Any

import structlog
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schemas.config import Settings
from schemas.jobqueue.pool import open_pool
from schemas.store.errors import Refusal, write_refusal
from schemas.store.keys import Keys
from schemas.store.ledger import Ledger
from worker.jobs.leases import LeaseTiming
from worker.service.app import BuiltWorker, Service, WorkerOptions, build_worker
from worker.service.metrics import Metrics, metrics_server

log = structlog.get_logger("callq.worker")

REDIS_LOST = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)

REBUILD_EVENTS = {
    "redis_lost": "worker.redis_lost",
    "redis_full": "worker.redis_full",
    "redis_refuses_writes": "worker.redis_refuses_writes",
}
"""What a worker that is rebuilt logs, by why."""


def _refused(exc: BaseException) -> str | None:
    """The rebuild reason for a refusal of writes, None for anything else."""
    refusal = write_refusal(exc)
    if refusal is None:
        return None
    return "redis_full" if refusal is Refusal.FULL else "redis_refuses_writes"


class Stopper:
    """Turns signals (or a programmatic request) into a graceful, then an immediate, stop."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.worker: BuiltWorker | None = None
        self.signals = 0

    def install(self) -> None:
        """Handle SIGTERM and SIGINT on the running loop."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.on_signal, sig)

    def on_signal(self, sig: signal.Signals) -> None:
        """First signal: graceful stop; second: at once."""
        self.signals += 1
        if self.signals == 1:
            log.info("worker.stopping", signal=sig.name, hint="a second signal stops at once")
            self.stop_gracefully()
        else:
            log.warning("worker.stopping_now", signal=sig.name)
            if self.worker is not None:
                self.worker.queue.stop_now()

    def stop_gracefully(self) -> None:
        """Stop taking work; finish what is in flight; then end the worker's run."""
        self.requested.set()
        worker = self.worker
        if worker is not None:
            worker.callbacks.stop_services()
            worker.queue.stop_gracefully()


async def run_worker_process(
    settings: Settings,
    options: WorkerOptions,
    *,
    stopper: Stopper | None = None,
    services: Sequence[Service] = (),
) -> int:
    """Run a worker (with ``services``, such as the intake) until stopped; survive Redis outages.

    Returns:
        The exit code.
    """
    stopper = stopper or Stopper()
    metrics = Metrics()
    async with contextlib.AsyncExitStack() as stack:
        if options.metrics_port is not None:
            await stack.enter_async_context(
                metrics_server(metrics, host=options.metrics_host, port=options.metrics_port)
            )
            log.info("metrics.listening", port=options.metrics_port)
        return await _run_until_stopped(settings, options, stopper, metrics, services)


async def _run_until_stopped(
    settings: Settings,
    options: WorkerOptions,
    stopper: Stopper,
    metrics: Metrics,
    services: Sequence[Service],
) -> int:
    delay_s = 1.0
    held: list[str] = []  # job ids a lost worker instance had picked
    while True:
        outcome = await _run_once(settings, options, stopper, metrics, services, held)
        if outcome == "stopped" or stopper.requested.is_set():
            return 0
        log.error(REBUILD_EVENTS[outcome], retry_in_s=delay_s)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopper.requested.wait(), timeout=delay_s)
        if stopper.requested.is_set():
            return 0
        delay_s = min(delay_s * 2, 30.0)


async def _run_once(
    settings: Settings,
    options: WorkerOptions,
    stopper: Stopper,
    metrics: Metrics,
    services: Sequence[Service],
    held: list[str],
) -> str:
    keys = Keys(settings.key_prefix)
    try:
        redis = await open_pool(settings.redis_url, keys.jobs)
        if held:
            # jobs the previous instance picked but never started would wait out their claim's
            # lease for nothing: release them
            released = await Ledger.for_settings(redis, settings).release_unstarted(held)
            log.info("worker.released_unstarted", held=len(held), released=released)
            held.clear()
    except REDIS_LOST:
        return "redis_lost"
    except Exception as exc:
        refused = _refused(exc)
        if refused is None:
            raise
        return refused
    worker = build_worker(settings, redis, options, metrics, services)
    stopper.worker = worker
    if stopper.requested.is_set():
        return "stopped"
    result = "stopped"
    try:
        await worker.queue.run()
    except asyncio.CancelledError:
        pass
    except Exception as exc:
        refused = None if isinstance(exc, REDIS_LOST) else _refused(exc)
        if refused is None and not isinstance(exc, REDIS_LOST):
            raise
        result = refused or "redis_lost"
        in_flight = worker.queue.jobs_in_flight()
        held.extend(job_id for job_id in in_flight if job_id not in held)
        # the jobs in flight keep their results and write them once Redis is back (their leases
        # are renewed meanwhile): wait for them rather than cancel them with the worker
        running = [task for task in in_flight.values() if not task.done()]
        if running:
            log.warning("worker.waiting_for_jobs", jobs=len(running))
            await asyncio.wait(running)
    finally:
        stopper.worker = None
        # after an immediate stop the queue's close() re-raises the cancelled jobs' CancelledError
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await worker.queue.close()
        # close() may fail before its shutdown hook (Redis gone): the session still closes
        await worker.callbacks.close_session()
    return result


def options_from_args(args: Any) -> WorkerOptions:
    """WorkerOptions from ``callq worker`` arguments."""
    if args.job_timeout is not None:
        # 0.2 cut a job at request timeout + 15 s, which could throw a known result away
        log.warning(
            "worker.option_ignored",
            option="--job-timeout",
            hint="arq no longer cuts jobs short; use --lease to set how soon a dead worker's jobs are taken over",
        )
    return WorkerOptions(
        concurrency=args.concurrency,
        burst=args.burst,
        intake=not args.no_intake,
        handle_signals=False,  # Stopper handles them: graceful first, immediate second
        metrics_port=args.metrics_port,
        leases=LeaseTiming.for_lease(args.lease),
    ).with_request_timeout(args.request_timeout)
