"""One worker instance: its collaborators built on start, the job function, background services.

The queue (arq, :mod:`schemas.jobqueue`) calls :meth:`CallbackWorker.run` with a job id; the job
itself is :func:`worker.jobs.run.run_job`. Alongside the jobs run the lease heartbeat, the
reconciler, the Redis gauges, the configuration watch and whatever services the process adds (the
intake stream reader, :mod:`ops.cli.assemble`), each in a task of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas.config import Settings
from schemas.config.drift import ConfigWatch
from schemas.jobqueue.runner import Again, QueueSettings, QueueWorker
from schemas.store.calls import CallStore
from schemas.store.errors import write_refusal
from schemas.store.keys import Keys
from schemas.store.ledger import Ledger
from schemas.store.secret import deployment_secret
from schemas.store.writegate import WriteGate
from worker.bitrix.address import PortalAddresses
from worker.bitrix.client import DEFAULT_TIMEOUT, USER_AGENT
from worker.bitrix.oauth import PortalAuth
from worker.calls.pull import keep_following
from worker.jobs.deps import Deps
from worker.jobs.leases import AttemptLeases, LeaseTiming
from worker.jobs.orphans import keep_reconciling
from worker.jobs.ratelimit import RateLimiter
from worker.jobs.run import run_job
from worker.jobs.voices import TICK_S as VOICES_TICK_S
from worker.jobs.voices import keep_voices_fresh
from worker.service.metrics import Metrics, keep_gauges_fresh

log = structlog.get_logger("callq.worker")

SHUTDOWN_WAIT_S = 35
"""On SIGTERM: stop taking jobs and give requests in flight this long (> the 30 s HTTP timeout) to
finish and record their outcome; a second signal stops at once. Stop timeouts must exceed it."""

RUNNER_FAILED_RETRY_S = 30.0
"""A job whose run failed on a bug (or on Redis) before any request runs again this much later."""

DEFAULT_CONCURRENCY = 20
"""Jobs in flight per process: they wait on HTTP, not CPU, and the rate limit is per portal."""

SERVICE_STOP_S = 5.0
"""How long a background service may take to stop once asked."""


@dataclass(frozen=True)
class WorkerOptions:
    """Knobs of one worker process."""

    concurrency: int = DEFAULT_CONCURRENCY
    poll_delay_s: float = 0.25
    leases: LeaseTiming = field(default_factory=LeaseTiming)
    shutdown_wait_s: int = SHUTDOWN_WAIT_S
    burst: bool = False
    intake: bool = True
    intake_block_ms: int = 1000
    handle_signals: bool = True
    client_timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT
    retry_base_s: float = 5.0
    pause_s: float = 60.0
    refused_s: float = 300.0
    block_s: float = 3600.0
    dedupe_and_rate_limit: bool = True  # off only in benchmarks that measure what they cost
    voices_after_s: float | None = VOICES_TICK_S  # first look at the portals' voice lists; None: never
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"
    follow_every_s: float = 1.0  # how often the calls' follow-up looks for calls to ask about

    def with_request_timeout(self, seconds: float) -> WorkerOptions:
        """Options for a Bitrix24 request timeout of ``seconds``; a graceful stop waits 5 s longer
        for the requests in flight."""
        timeout = aiohttp.ClientTimeout(
            total=seconds, connect=min(10.0, seconds), sock_connect=min(5.0, seconds), sock_read=seconds
        )
        return replace(self, client_timeout=timeout, shutdown_wait_s=int(seconds) + 5)

    def queue_settings(self) -> QueueSettings:
        """How the queue hands this worker its jobs."""
        return QueueSettings(
            concurrency=self.concurrency,
            poll_delay_s=self.poll_delay_s,
            lease_s=self.leases.lease_s,
            shutdown_wait_s=self.shutdown_wait_s,
            burst=self.burst,
            handle_signals=self.handle_signals,
        )


@dataclass(frozen=True)
class ServiceContext:
    """What a background service of the worker gets: Redis, the write gate, metrics, its stop signal."""

    redis: Redis
    gate: WriteGate
    metrics: Metrics
    stop: asyncio.Event


Service = Callable[[ServiceContext], Coroutine[Any, Any, None]]
"""A background service: runs until its ``stop`` is set (the intake stream reader, say)."""


class CallbackWorker:
    """The callq side of one worker instance (arq's side is :class:`~schemas.jobqueue.runner.QueueWorker`).

    Args:
        settings: the configuration.
        redis: the pool (shared with the queue).
        options: the process's knobs.
        metrics: where counters and gauges go.
        services: background services started with the worker and stopped first when it stops.
    """

    def __init__(
        self,
        settings: Settings,
        redis: Redis,
        options: WorkerOptions,
        metrics: Metrics,
        services: Sequence[Service] = (),
    ) -> None:
        self.settings = settings
        self.redis = redis
        self.options = options
        self.metrics = metrics
        self.services = services
        self.keys = Keys(settings.key_prefix)
        self.gate = WriteGate(on_change=metrics.set_writes_refused)
        metrics.set_writes_refused(None)
        self.service_stop = asyncio.Event()
        self.deps: Deps | None = None
        self.session: aiohttp.ClientSession | None = None
        self.config_watch: ConfigWatch | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._service_tasks: list[asyncio.Task[None]] = []

    async def run(self, job_id: str) -> Again | None:
        """Run one job (the queue's job function).

        A job that runs again was already put back in the queue, at its time, by the store's script
        in the same step as its state (``Again()``); one whose run failed before any request runs
        again a little later (``Again(in_s)``).
        """
        assert self.deps is not None, "the worker has not started"
        try:
            again = await run_job(self.deps, job_id) is not None
        except Exception as exc:
            refusal = write_refusal(exc)
            if refusal is not None:
                # a write before the request (Redis refuses writes): nothing changed, nothing was sent
                self.gate.refused("job", refusal)
                return Again(in_s=max(self.gate.wait_s(), 1.0))
            # Nothing was sent (run_job records the outcome itself once a request may be out), so
            # the job is tried again rather than left to the queue, which would drop it.
            log.exception("job.runner_failed", job_id=job_id)
            return Again(in_s=RUNNER_FAILED_RETRY_S)
        return Again() if again else None

    async def start(self) -> None:
        """Build the collaborators and start the background tasks."""
        self.session = aiohttp.ClientSession(
            timeout=self.options.client_timeout,
            headers={"User-Agent": USER_AGENT},
            connector=aiohttp.TCPConnector(limit=max(self.options.concurrency * 2, 20)),
        )
        try:
            self._start(self.session)
        except BaseException:  # a crash at start must not leave the session open (aiohttp warns of it)
            await self.close_session()
            raise

    async def close_session(self) -> None:
        """Close the HTTP session, if one was opened (safe to call twice)."""
        session, self.session = self.session, None
        if session is not None and not session.closed:
            await session.close()

    def _start(self, session: aiohttp.ClientSession) -> None:
        options, settings, redis, gate = self.options, self.settings, self.redis, self.gate
        ledger = Ledger.for_settings(redis, settings, retry=gate.until_written)
        leases = AttemptLeases(ledger, timing=options.leases)
        self.deps = deps = Deps(
            settings=settings,
            ledger=ledger,
            session=session,
            limiter=RateLimiter(redis, keys=self.keys, retry=gate.until_written),
            auth=PortalAuth(redis, prefix=settings.key_prefix, session=session, retry=gate.until_written),
            addresses=PortalAddresses(
                redis,
                self.keys,
                retry=gate.until_written,
                on_move=lambda portal, _move: self.metrics.portal_moves.labels(portal=portal).inc(),
            ),
            leases=leases,
            metrics=self.metrics,
            rate_limit=options.dedupe_and_rate_limit,
            client_timeout=options.client_timeout,
            retry_base_s=options.retry_base_s,
            pause_s=options.pause_s,
            refused_s=options.refused_s,
            block_s=options.block_s,
            gate=gate,
            calls=CallStore.for_settings(redis, settings, retry=gate.until_written),
        )
        context = ServiceContext(redis=redis, gate=gate, metrics=self.metrics, stop=self.service_stop)
        self._service_tasks = [asyncio.create_task(service(context)) for service in self.services]
        self.metrics.worker_up.set(1)
        self._tasks = [
            asyncio.create_task(keep_gauges_fresh(self.metrics, redis, self.keys, settings.portals)),
            asyncio.create_task(leases.keep_beating()),
            asyncio.create_task(keep_reconciling(deps)),
            asyncio.create_task(keep_following(deps, every_s=options.follow_every_s)),
            asyncio.create_task(self._watch_config()),
        ]
        if options.voices_after_s is not None:
            refresh = keep_voices_fresh(deps, redis, self.keys, first_after_s=options.voices_after_s)
            self._tasks.append(asyncio.create_task(refresh))
        log.info(
            "worker.started",
            queue=self.keys.queue,
            portals=sorted(settings.portals),
            concurrency=options.concurrency,
        )

    def stop_services(self) -> None:
        """Ask the background services (the intake) to stop taking work."""
        self.service_stop.set()

    async def stop(self) -> None:
        """After the jobs in flight ended (their leases were kept alive meanwhile): stop the rest."""
        self.metrics.worker_up.set(0)
        try:
            await self._stop()
        finally:
            await self.close_session()
        log.info("worker.stopped")

    async def _stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.config_watch is not None:
            await self.config_watch.withdraw()
        self.stop_services()
        if self._service_tasks:
            await asyncio.wait(self._service_tasks, timeout=SERVICE_STOP_S)
            for task in self._service_tasks:
                task.cancel()

    async def _watch_config(self) -> None:
        """Register this worker's configuration and keep comparing it with the other processes'.

        A task of its own, so that a full Redis at start (the deployment secret not yet created, the
        registry refusing writes) delays only this, not the worker.
        """
        redis, keys = self.redis, self.keys
        secret = await self.gate.until_written(
            lambda: deployment_secret(redis, keys), where="deployment secret"
        )
        watch = ConfigWatch(
            redis,
            keys,
            self.settings,
            secret=secret,
            role="worker",
            on_mismatch=self.metrics.set_config_mismatch,
        )
        self.config_watch = watch
        with contextlib.suppress(RedisError, OSError):  # its loop tries again
            await watch.check()
        await watch.run()


@dataclass(frozen=True)
class BuiltWorker:
    """A worker instance: the queue's side and callq's side."""

    queue: QueueWorker
    callbacks: CallbackWorker


def build_worker(
    settings: Settings,
    redis: Redis,
    options: WorkerOptions = WorkerOptions(),
    metrics: Metrics | None = None,
    services: Sequence[Service] = (),
) -> BuiltWorker:
    """A worker for ``settings``; ``await built.queue.run()`` then ``await built.queue.close()``."""
    callbacks = CallbackWorker(settings, redis, options, metrics or Metrics(), services)
    queue = QueueWorker(
        redis=redis,
        names=callbacks.keys.jobs,
        job=callbacks.run,
        settings=options.queue_settings(),
        on_startup=callbacks.start,
        on_shutdown=callbacks.stop,
        gate=callbacks.gate,
    )
    return BuiltWorker(queue=queue, callbacks=callbacks)
