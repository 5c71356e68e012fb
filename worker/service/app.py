"""The arq side of callq: one job function, the worker's settings, start-up and shut-down.

arq 0.28 is in maintenance mode, so everything arq-specific stays in this module; the rest of
callq sees only :func:`worker.jobs.run.run_job` and :class:`worker.jobs.deps.Deps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, TypedDict

import aiohttp
import structlog
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Retry, Worker, func
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError, RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from producers.api import Producer
from producers.stream import IntakeConsumer
from schemas.config import Settings
from schemas.config.drift import ConfigWatch
from schemas.jobqueue.worker import BatchClaimWorker
from schemas.store.connect import parse_sentinel_url
from schemas.store.keys import ARQ_FUNCTION, Keys
from schemas.store.ledger import Ledger, arq_job_fields
from schemas.store.secret import deployment_secret
from schemas.store.writegate import WriteGate
from worker.bitrix.client import DEFAULT_TIMEOUT, USER_AGENT
from worker.bitrix.oauth import PortalAuth
from worker.jobs.deps import Deps
from worker.jobs.leases import AttemptLeases, LeaseTiming
from worker.jobs.orphans import keep_reconciling
from worker.jobs.ratelimit import RateLimiter
from worker.jobs.run import run_job
from worker.service.metrics import Metrics, keep_gauges_fresh

log = structlog.get_logger("callq.worker")

# Why arq's settings are what they are:
POLL_DELAY_S = 0.25
"""arq's default 0.5 s adds up to half a second to every due job; a sorted-set read every 250 ms is cheap."""

JOB_TIMEOUT_S = 7 * 86400
"""arq never cuts a callback job short. Its request is bounded by the HTTP client's timeout
(``--request-timeout``), and the bookkeeping after it must be written however long Redis takes
(:func:`worker.jobs.settle.durably`): a timeout there would throw a known result away. Jobs of a worker
that died are taken over through leases instead (``--lease``, :mod:`worker.jobs.leases`)."""

SHUTDOWN_WAIT_S = 35
"""On SIGTERM: stop taking jobs and give requests in flight this long (> the 30 s HTTP timeout) to
finish and record their outcome; a second signal stops at once. Stop timeouts must exceed it."""

MAX_TRIES = 1_000_000
"""callq counts attempts itself (``max_attempts`` per portal); arq's counter also counts every
put-back for closed hours or the rate limit, which are not attempts, so arq's limit is disabled."""

KEEP_RESULT_S = 0
"""The job record holds the outcome; an arq result would be a second copy and would block a job
id for its lifetime."""

RUNNER_FAILED_RETRY_S = 30.0
"""A job whose run failed on a bug (or on Redis) before any request runs again this much later."""

HEALTH_CHECK_INTERVAL_S = 10
"""arq refreshes ``{p}:queue:health-check`` this often; readiness checks read it."""

DEFAULT_CONCURRENCY = 20
"""Jobs in flight per process: they wait on HTTP, not CPU, and the rate limit is per portal."""

QUEUE_READ_LIMIT = 1000
"""Due job ids read per poll. arq's default (5 × concurrency, at least 100) capped a process at
about 400 jobs/s: a batch claimed in less than the 0.25 s poll delay then waits for the next poll.
The ids are claimed as slots free up (:mod:`schemas.jobqueue.worker`), so reading more holds nothing."""


class WorkerContext(TypedDict, total=False):
    """arq's ctx as callq uses it."""

    redis: ArqRedis
    deps: Deps
    intake_stop: asyncio.Event
    intake_task: asyncio.Task[None]
    gauges_task: asyncio.Task[None]
    heartbeat_task: asyncio.Task[None]
    reconcile_task: asyncio.Task[None]
    config_watch: ConfigWatch
    config_task: asyncio.Task[None]
    job_id: str


@dataclass(frozen=True)
class WorkerOptions:
    """Knobs of one worker process, with the defaults explained above."""

    concurrency: int = DEFAULT_CONCURRENCY
    poll_delay_s: float = POLL_DELAY_S
    leases: LeaseTiming = field(default_factory=LeaseTiming)
    shutdown_wait_s: int = SHUTDOWN_WAIT_S
    burst: bool = False
    intake: bool = True
    intake_block_ms: int = 1000
    handle_signals: bool = True
    client_timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT
    retry_base_s: float = 5.0
    pause_s: float = 60.0
    block_s: float = 3600.0
    dedupe_and_rate_limit: bool = True  # off only in benchmarks that measure what they cost
    metrics_port: int | None = None
    metrics_host: str = "0.0.0.0"

    def with_request_timeout(self, seconds: float) -> WorkerOptions:
        """Options for a Bitrix24 request timeout of ``seconds``; a graceful stop waits 5 s longer
        for the requests in flight."""
        timeout = aiohttp.ClientTimeout(
            total=seconds, connect=min(10.0, seconds), sock_connect=min(5.0, seconds), sock_read=seconds
        )
        return replace(self, client_timeout=timeout, shutdown_wait_s=int(seconds) + 5)


def dumps(data: Any) -> bytes:
    """arq job serializer: JSON, so that any language can read what is in Redis."""
    return json.dumps(data, separators=(",", ":")).encode()


def loads(raw: bytes) -> Any:
    """arq job deserializer; reads the short form admission writes (:func:`schemas.store.ledger.arq_payload`)."""
    return arq_job_fields(json.loads(raw))


async def run_callback(ctx: WorkerContext, job_id: str) -> None:
    """The arq job: run one callq job.

    A job that runs again was already put back in arq's queue, at its time, by the ledger's script
    in the same step as its state: arq is told to retry without moving it (``Retry()``).
    """
    deps = ctx["deps"]
    try:
        again = await run_job(deps, job_id) is not None
    except OutOfMemoryError:
        deps.gate.refused("job")  # a write before the request: nothing changed, nothing was sent
        raise Retry(defer=max(deps.gate.wait_s(), 1.0)) from None
    except Exception:
        # Nothing was sent (run_job records the outcome itself once a request may be out), so
        # the job is tried again rather than left to arq, which would drop it.
        log.exception("job.runner_failed", job_id=job_id)
        raise Retry(defer=RUNNER_FAILED_RETRY_S) from None
    if again:
        raise Retry()


async def open_pool(settings: Settings) -> ArqRedis:
    """arq's Redis pool with callq's JSON serializer and queue name."""
    target = parse_sentinel_url(settings.redis_url)
    if target is None:
        redis_settings = RedisSettings.from_dsn(settings.redis_url)
    else:
        redis_settings = RedisSettings(
            host=list(target.sentinels), sentinel=True, sentinel_master=target.master, database=target.db,
            username=target.username, password=target.password,
        )  # fmt: skip
    redis_settings.conn_timeout = 5
    # A Redis restart or failover must not kill a job half-way: each command is retried with
    # backoff for about a minute. The Lua steps are safe to repeat (a repeated FINALIZE finds the
    # job final; a repeated START finds the attempt it started, by its token).
    redis_settings.retry = RedisRetry(ExponentialBackoff(cap=5.0, base=0.1), retries=20)
    redis_settings.retry_on_error = [RedisConnectionError, RedisTimeoutError, ConnectionError, OSError]
    redis_settings.conn_retries = 30
    return await create_pool(
        redis_settings,
        job_serializer=dumps,
        job_deserializer=loads,
        default_queue_name=Keys(settings.key_prefix).queue,
    )


def build_worker(
    settings: Settings,
    pool: ArqRedis,
    options: WorkerOptions = WorkerOptions(),
    metrics: Metrics | None = None,
) -> Worker:
    """An arq Worker for ``settings``; call ``await worker.main()`` then ``await worker.close()``."""
    keys = Keys(settings.key_prefix)
    metrics = metrics or Metrics()
    gauge = metrics.redis_full
    gate = WriteGate(on_change=lambda full: gauge.set(1 if full else 0))
    gauge.set(0)

    async def on_startup(ctx: dict[str, Any]) -> None:
        session = aiohttp.ClientSession(
            timeout=options.client_timeout,
            headers={"User-Agent": USER_AGENT},
            connector=aiohttp.TCPConnector(limit=max(options.concurrency * 2, 20)),
        )
        ledger = Ledger(
            pool,
            keys=keys,
            retention_s=settings.outcome_retention_s,
            outcomes_maxlen=settings.outcomes_maxlen,
            retry=gate.until_written,
        )
        leases = AttemptLeases(ledger, timing=options.leases)
        ctx["deps"] = deps = Deps(
            settings=settings,
            ledger=ledger,
            session=session,
            limiter=RateLimiter(pool, keys=keys, retry=gate.until_written),
            auth=PortalAuth(pool, prefix=settings.key_prefix, session=session, retry=gate.until_written),
            leases=leases,
            metrics=metrics,
            rate_limit=options.dedupe_and_rate_limit,
            client_timeout=options.client_timeout,
            retry_base_s=options.retry_base_s,
            pause_s=options.pause_s,
            block_s=options.block_s,
            gate=gate,
        )
        if options.intake:
            consumer = IntakeConsumer(
                pool,
                producer=Producer(pool, settings=settings, dedupe_and_pacing=options.dedupe_and_rate_limit),
                keys=keys,
                block_ms=options.intake_block_ms,
                on_admitted=lambda status: metrics.intake_entries.labels(result=status).inc(),
            )
            try:
                await consumer.ensure_group()
            except OutOfMemoryError:
                gate.refused("intake group")  # the intake loop creates it once Redis takes writes
            ctx["intake_stop"] = stop = asyncio.Event()
            ctx["intake_task"] = asyncio.create_task(_keep_consuming(consumer, stop, gate))
        metrics.worker_up.set(1)
        ctx["gauges_task"] = asyncio.create_task(keep_gauges_fresh(metrics, pool, keys, settings.portals))
        ctx["heartbeat_task"] = asyncio.create_task(leases.keep_beating())
        ctx["reconcile_task"] = asyncio.create_task(keep_reconciling(deps))
        ctx["config_task"] = asyncio.create_task(_watch_config(ctx, pool, keys, settings, metrics, gate))
        log.info(
            "worker.started",
            queue=keys.queue,
            portals=sorted(settings.portals),
            concurrency=options.concurrency,
        )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        # after arq's close() waited for the jobs in flight: their leases were kept alive meanwhile
        metrics.worker_up.set(0)
        for name in ("gauges_task", "heartbeat_task", "reconcile_task", "config_task"):
            if name in ctx:
                ctx[name].cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ctx[name]
        if "config_watch" in ctx:
            await ctx["config_watch"].withdraw()
        if "intake_task" in ctx:
            ctx["intake_stop"].set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(ctx["intake_task"], timeout=5)
        deps: Deps | None = ctx.get("deps")
        if deps is not None:
            await deps.session.close()
        log.info("worker.stopped")

    return BatchClaimWorker(
        functions=[func(run_callback, name=ARQ_FUNCTION, max_tries=MAX_TRIES, timeout=JOB_TIMEOUT_S)],  # type: ignore[arg-type]
        redis_pool=pool,
        queue_name=keys.queue,
        health_check_key=keys.health,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        job_serializer=dumps,
        job_deserializer=loads,
        poll_delay=options.poll_delay_s,
        max_jobs=options.concurrency,
        queue_read_limit=QUEUE_READ_LIMIT,
        job_timeout=JOB_TIMEOUT_S,
        lease_s=options.leases.lease_s,
        keep_result=KEEP_RESULT_S,
        max_tries=MAX_TRIES,
        burst=options.burst,
        handle_signals=options.handle_signals,
        job_completion_wait=options.shutdown_wait_s,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        log_results=False,
        gate=gate,
    )


async def _watch_config(
    ctx: dict[str, Any], pool: ArqRedis, keys: Keys, settings: Settings, metrics: Metrics, gate: WriteGate
) -> None:
    """Register this worker's configuration and keep comparing it with the other processes'.

    A task of its own, so that a full Redis at start (the deployment secret not yet created, the
    registry refusing writes) delays only this, not the worker.
    """
    secret = await gate.until_written(lambda: deployment_secret(pool, keys), where="deployment secret")
    watch = ConfigWatch(
        pool, keys, settings, secret=secret, role="worker", on_mismatch=metrics.set_config_mismatch
    )
    ctx["config_watch"] = watch
    with contextlib.suppress(RedisError, OSError):  # its loop tries again
        await watch.check()
    await watch.run()


async def _keep_consuming(consumer: IntakeConsumer, stop: asyncio.Event, gate: WriteGate) -> None:
    """Run the intake consumer; a Redis hiccup is logged and retried, never fatal. While Redis is
    full nothing is acknowledged: the entries read are admitted once it takes writes again."""
    delay = 0.5
    while not stop.is_set():
        try:
            await consumer.run(stop)
        except asyncio.CancelledError:
            raise
        except OutOfMemoryError:
            gate.refused("intake")  # logged once by the gate, not a traceback per try
            wait = max(gate.wait_s(), 0.5)
        except Exception:
            log.exception("intake.failed", retry_in_s=delay)
            wait, delay = delay, min(delay * 2, 30.0)
        else:
            delay = 0.5
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
