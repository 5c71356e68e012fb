"""The arq side of callq: one job function, the worker's settings, start-up and shut-down.

arq 0.28 is in maintenance mode, so everything arq-specific stays in this module; the rest of
callq sees only :func:`worker.runner.run_job` and :class:`worker.deps.Deps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, replace
from typing import Any, TypedDict

import aiohttp
import structlog
from arq.connections import ArqRedis, RedisSettings, create_pool
from arq.worker import Retry, Worker, func
from redis.asyncio.retry import Retry as RedisRetry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import OutOfMemoryError
from redis.exceptions import TimeoutError as RedisTimeoutError

from producers.api import Producer
from producers.stream import IntakeConsumer
from schemas.config import Settings
from schemas.keys import ARQ_FUNCTION, Keys
from schemas.ledger import Ledger, arq_job_fields
from schemas.redis_url import parse_sentinel_url
from worker.auth import PortalAuth
from worker.bitrix import DEFAULT_TIMEOUT, USER_AGENT
from worker.deps import Deps
from worker.dispatch import BatchClaimWorker
from worker.metrics import Metrics, keep_gauges_fresh
from worker.ratelimit import RateLimiter
from worker.redis_full import WriteGate
from worker.runner import run_job

log = structlog.get_logger("callq.worker")

# Why arq's settings are what they are:
POLL_DELAY_S = 0.25
"""arq's default 0.5 s adds up to half a second to every due job; a sorted-set read every 250 ms is cheap."""

JOB_TIMEOUT_S = 45
"""How long a job may run until its request is sent: longer than a Bitrix24 request may take (30 s
client timeout) plus Redis round trips, so a request is never cut half-way. callq enforces it itself
(:func:`run_callback`) and lifts it once the request is under way: the result must be written even if
Redis is full for long. A job's in-progress key is a lease of this + 10 s, renewed while the job runs
(:mod:`worker.dispatch`): a job held by a worker that died is taken over after about 55 s (arq: 310 s)."""

RESULT_UNWRITTEN = (
    "the worker stopped after sending this job's request and before recording its result; the worker "
    "that takes the job over ends it OUTCOME_UNKNOWN: check the portal's call history before replaying it"
)

ARQ_TIMEOUT_S = 10 * 365 * 86400.0
"""arq's own job timeout, in effect none: arq would end a timed-out job as failed and delete it,
leaving its record without an outcome; callq's timeout puts it back instead."""

SHUTDOWN_WAIT_S = 35
"""On SIGTERM: stop taking jobs and give requests in flight this long (> the 30 s HTTP timeout) to
finish and record their outcome; a second signal stops at once. Stop timeouts must exceed it."""

MAX_TRIES = 1_000_000
"""callq counts attempts itself (``max_attempts`` per portal); arq's counter also counts every
put-back for closed hours or the rate limit, which are not attempts, so arq's limit is disabled."""

KEEP_RESULT_S = 0
"""The job record holds the outcome; an arq result would be a second copy and would block a job
id for its lifetime."""

HEALTH_CHECK_INTERVAL_S = 10
"""arq refreshes ``{p}:queue:health-check`` this often; readiness checks read it."""

DEFAULT_CONCURRENCY = 20
"""Jobs in flight per process: they wait on HTTP, not CPU, and the rate limit is per portal."""

QUEUE_READ_LIMIT = 1000
"""Due job ids read per poll. arq's default (5 × concurrency, at least 100) capped a process at
about 400 jobs/s: a batch claimed in less than the 0.25 s poll delay then waits for the next poll.
The ids are claimed as slots free up (:mod:`worker.dispatch`), so reading more holds nothing."""


class WorkerContext(TypedDict, total=False):
    """arq's ctx as callq uses it."""

    redis: ArqRedis
    deps: Deps
    intake_stop: asyncio.Event
    intake_task: asyncio.Task[None]
    gauges_task: asyncio.Task[None]
    job_id: str


@dataclass(frozen=True)
class WorkerOptions:
    """Knobs of one worker process, with the defaults explained above."""

    concurrency: int = DEFAULT_CONCURRENCY
    poll_delay_s: float = POLL_DELAY_S
    job_timeout_s: float = JOB_TIMEOUT_S
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

    def with_request_timeout(self, seconds: float, *, job_timeout_s: float | None = None) -> WorkerOptions:
        """Options for a Bitrix24 request timeout of ``seconds``.

        The job timeout defaults to 15 s above it, so arq never cancels a request half-way and a
        short Redis outage while recording the outcome is absorbed; a dead worker's job is taken
        over 10 s after the job timeout.
        """
        timeout = aiohttp.ClientTimeout(total=seconds, connect=min(10.0, seconds), sock_connect=min(5.0, seconds),
                                        sock_read=seconds)  # fmt: skip
        job_timeout = job_timeout_s if job_timeout_s is not None else seconds + 15
        if job_timeout <= seconds:
            raise ValueError("the job timeout must be longer than the request timeout")
        return replace(
            self, client_timeout=timeout, job_timeout_s=job_timeout, shutdown_wait_s=int(seconds) + 5
        )


def dumps(data: Any) -> bytes:
    """arq job serializer: JSON, so that any language can read what is in Redis."""
    return json.dumps(data, separators=(",", ":")).encode()


def loads(raw: bytes) -> Any:
    """arq job deserializer; reads the short form admission writes (:func:`schemas.ledger.arq_payload`)."""
    return arq_job_fields(json.loads(raw))


async def run_callback(ctx: WorkerContext, job_id: str) -> None:
    """The arq job: run one callq job; a delay becomes arq's ``Retry``.

    The run may take ``job_timeout_s`` until its request is sent, then as long as writing the result
    takes. A run cut short before sending, or failing on the way, is tried again rather than left to
    arq, which would drop it (run_job records the outcome itself once a request may be out).
    """
    deps = ctx["deps"]
    limit = asyncio.timeout(deps.job_timeout_s)
    sent = False

    def attempt_started() -> None:
        nonlocal sent
        sent = True
        limit.reschedule(None)

    try:
        async with limit:
            delay = await run_job(deps, job_id, on_attempt_started=attempt_started)
    except asyncio.CancelledError:
        if sent:  # stopped at once, or a graceful stop ran out of time (Redis full): the result is lost
            log.error("job.result_unwritten", job_id=job_id, hint=RESULT_UNWRITTEN)
        raise
    except OutOfMemoryError:
        deps.gate.refused("job")  # a write before the request: nothing changed, nothing was sent
        delay = max(deps.gate.wait_s(), 1.0)
    except Exception as exc:
        if isinstance(exc, TimeoutError) and limit.expired():
            log.warning("job.timed_out", job_id=job_id, timeout_s=deps.job_timeout_s)
            delay = 5.0
        else:
            log.exception("job.runner_failed", job_id=job_id)
            delay = 30.0
    if delay is not None:
        raise Retry(defer=delay)


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
    # job final; a repeated START finds it running and takes the unknown-result path, never a call).
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
        ctx["deps"] = Deps(
            settings=settings,
            ledger=ledger,
            session=session,
            limiter=RateLimiter(pool, keys=keys, retry=gate.until_written),
            auth=PortalAuth(pool, prefix=settings.key_prefix, session=session, retry=gate.until_written),
            metrics=metrics,
            rate_limit=options.dedupe_and_rate_limit,
            client_timeout=options.client_timeout,
            retry_base_s=options.retry_base_s,
            pause_s=options.pause_s,
            block_s=options.block_s,
            gate=gate,
            job_timeout_s=options.job_timeout_s,
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
        log.info(
            "worker.started",
            queue=keys.queue,
            portals=sorted(settings.portals),
            concurrency=options.concurrency,
        )

    async def on_shutdown(ctx: dict[str, Any]) -> None:
        metrics.worker_up.set(0)
        if "gauges_task" in ctx:
            ctx["gauges_task"].cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ctx["gauges_task"]
        if "intake_task" in ctx:
            ctx["intake_stop"].set()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(ctx["intake_task"], timeout=5)
        deps: Deps | None = ctx.get("deps")
        if deps is not None:
            await deps.session.close()
        log.info("worker.stopped")

    return BatchClaimWorker(
        functions=[func(run_callback, name=ARQ_FUNCTION, max_tries=MAX_TRIES, timeout=ARQ_TIMEOUT_S)],  # type: ignore[arg-type]
        redis_pool=pool,
        queue_name=keys.queue,
        health_check_key=keys.health,
        health_check_interval=HEALTH_CHECK_INTERVAL_S,
        job_serializer=dumps,
        job_deserializer=loads,
        poll_delay=options.poll_delay_s,
        max_jobs=options.concurrency,
        queue_read_limit=QUEUE_READ_LIMIT,
        job_timeout=ARQ_TIMEOUT_S,
        keep_result=KEEP_RESULT_S,
        max_tries=MAX_TRIES,
        burst=options.burst,
        handle_signals=options.handle_signals,
        job_completion_wait=options.shutdown_wait_s,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        log_results=False,
        gate=gate,
        lease_s=options.job_timeout_s + 10,
    )


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
