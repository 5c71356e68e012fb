"""Prometheus metrics of a worker process (and of ``callq serve``), in a registry passed around.

Counters and the latency histogram are updated where things happen (the job runner, the intake).
Gauges that describe Redis (queue depth, scheduled jobs, dead letters, intake lag, paused portals)
are refreshed by :func:`refresh_gauges` every few seconds, so a scrape never waits on Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Mapping
from datetime import datetime

import structlog
from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas.config import PortalConfig
from schemas.policy.call_result import CallEnd
from schemas.policy.moves import PortalMove
from schemas.store.errors import Refusal
from schemas.store.keys import Keys
from schemas.store.records import JobRecord

log = structlog.get_logger("callq.metrics")

LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """Every metric callq exports, registered in ``registry`` (a fresh one by default)."""

    def __init__(self, registry: CollectorRegistry | None = None, *, worker: bool = True) -> None:
        """``worker=False`` (``callq serve``) leaves out ``callq_worker_up``: alerts count workers by it."""
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.jobs_finished = Counter(
            "callq_jobs_finished", "Jobs that reached a final outcome", ["portal", "status"], registry=r
        )
        self.attempts = Counter(
            "callq_attempts",
            "Requests to voximplant.callback.start, by result",
            ["portal", "result"],
            registry=r,
        )
        self.retries = Counter(
            "callq_retries", "Jobs put back to try again, by error code", ["portal", "code"], registry=r
        )
        self.rate_limit_waits = Counter(
            "callq_rate_limit_waits", "Jobs put back to wait for a rate-limit slot", ["portal"], registry=r
        )
        self.bitrix_request_seconds = Histogram(
            "callq_bitrix_request_seconds",
            "Bitrix24 request latency",
            ["portal", "method"],
            buckets=LATENCY_BUCKETS_S,
            registry=r,
        )
        # a call's follow-up (issue 14): reached ratio = call_results{result="connected"} / call_results
        self.call_ends = Counter(
            "callq_call_ends",
            "Calls whose end became known (redialled ones included), by result",
            ["portal", "line", "result"],
            registry=r,
        )
        self.call_results = Counter(
            "callq_call_results",
            "Final call results of jobs, by result",
            ["portal", "line", "result"],
            registry=r,
        )
        self.time_to_connect_seconds = Histogram(
            "callq_time_to_connect_seconds",
            "From a job's arrival to its connected call's start, redials included",
            ["portal", "line"],
            buckets=(5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 900.0, 1800.0, 3600.0, 14400.0, 86400.0),
            registry=r,
        )
        self.statistics_requests = Counter(
            "callq_statistics_requests", "Requests to voximplant.statistic.get (pull)", ["portal"], registry=r
        )
        self.redials = Counter("callq_redials", "Redials started", ["portal", "line"], registry=r)
        self.intake_entries = Counter(
            "callq_intake_entries", "Intake stream entries admitted, by result", ["result"], registry=r
        )
        self.results_dropped = Counter(
            "callq_results_dropped",
            "Attempt ends their record no longer took (missing, final, superseded, other): the log's"
            " job.result_dropped is then the only trace besides the portal's call history",
            ["reason"],
            registry=r,
        )
        self.orphans_ended = Counter(
            "callq_orphaned_attempts",
            "Attempts found with their lease lapsed (their worker stopped working on them)",
            ["portal"],
            registry=r,
        )
        self.running_attempts = Gauge(
            "callq_running_attempts", "Attempts in flight (requests sent or about to be)", registry=r
        )
        self.queue_depth = Gauge("callq_queue_depth", "Jobs in arq's queue (due or waiting)", registry=r)
        self.scheduled_jobs = Gauge("callq_scheduled_jobs", "Jobs waiting for a later run time", registry=r)
        self.dead_letters = Gauge("callq_dead_letters", "Jobs in the dead-letter store", registry=r)
        self.intake_lag_seconds = Gauge(
            "callq_intake_lag_seconds", "Age of the oldest unprocessed intake entry", registry=r
        )
        self.portal_paused = Gauge(
            "callq_portal_paused", "1 while a portal is paused or halted", ["portal", "reason"], registry=r
        )
        self.portal_halts = Counter(
            "callq_portal_halts",
            "Portals halted because Bitrix24 refused them as a whole, by error code",
            ["portal", "code"],
            registry=r,
        )
        self.portal_moved = Gauge(
            "callq_portal_moved",
            "1 while a portal answers at another address than the configured one (update the configuration)",
            ["portal"],
            registry=r,
        )
        self.portal_moves = Counter(
            "callq_portal_moves",
            "Moves of a portal to another address seen by this worker",
            ["portal"],
            registry=r,
        )
        self.config_mismatch = Gauge(
            "callq_config_mismatch",
            "1 while this process's configuration differs from another live process's",
            registry=r,
        )
        self.worker_up = Gauge(
            "callq_worker_up",
            "1 while this worker process runs",
            registry=r if worker else CollectorRegistry(),
        )
        self.redis_full = Gauge(
            "callq_redis_full",
            "1 while Redis refuses this worker's writes (maxmemory reached under noeviction)",
            registry=r if worker else CollectorRegistry(),
        )
        self.redis_writes_refused = Gauge(
            "callq_redis_writes_refused",
            "1 while Redis refuses this worker's writes, by reason (full, misconf, readonly, noreplicas)",
            ["reason"],
            registry=r if worker else CollectorRegistry(),
        )

    def set_writes_refused(self, refusal: Refusal | None) -> None:
        """``callq_redis_writes_refused{reason}`` (every reason shown, 1 for the current one) and
        ``callq_redis_full``: why Redis refuses this worker's writes, None when it takes them."""
        for reason in Refusal:
            self.redis_writes_refused.labels(reason=str(reason)).set(1 if refusal is reason else 0)
        self.redis_full.set(1 if refusal is Refusal.FULL else 0)

    def count_call_end(self, record: JobRecord, end: CallEnd, *, ended: bool, now: datetime) -> None:
        """One call's end became known (pulled by a worker or pushed to ``callq serve``): its result,
        and when ``ended`` the job's final call result and, if connected, its time to connect."""
        job = record.job
        self.call_ends.labels(portal=job.portal, line=job.from_line, result=str(end.kind)).inc()
        if not ended:
            return
        self.call_results.labels(portal=job.portal, line=job.from_line, result=str(end.kind)).inc()
        if end.connected and record.created_at is not None:
            self.time_to_connect_seconds.labels(portal=job.portal, line=job.from_line).observe(
                max((now - record.created_at).total_seconds() - end.duration_s, 0.0)
            )

    def set_config_mismatch(self, differs: bool) -> None:
        """``callq_config_mismatch``: 1 while this process's configuration differs from another's."""
        self.config_mismatch.set(1 if differs else 0)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


async def refresh_gauges(
    metrics: Metrics, redis: Redis, keys: Keys, portals: Mapping[str, PortalConfig]
) -> None:
    """Read the Redis-side gauges once.

    Args:
        metrics: where the gauges go.
        redis: the deployment's Redis.
        keys: its key names.
        portals: the configured portals (a move recorded from one's configured address sets
            ``callq_portal_moved``).
    """
    now_ms = time.time() * 1000
    async with redis.pipeline(transaction=False) as pipe:
        pipe.zcard(keys.queue)
        pipe.zcount(keys.queue, f"({now_ms}", "+inf")
        pipe.zcard(keys.dead)
        pipe.xrange(keys.intake, count=1)
        pipe.zcard(keys.running)
        names = list(portals)
        for portal in names:
            pipe.pttl(keys.portal_pause(portal))
            pipe.pttl(keys.portal_halt(portal))
            pipe.get(keys.portal_pause(portal))
            pipe.get(keys.portal_moved(portal))
        replies = await pipe.execute()
    depth, waiting, dead, first, running = replies[:5]
    metrics.running_attempts.set(running)
    metrics.queue_depth.set(depth)
    metrics.scheduled_jobs.set(waiting)
    metrics.dead_letters.set(dead)
    # acknowledged entries are deleted, so the first one left is the oldest not yet admitted
    oldest_ms = int(first[0][0].decode().split("-")[0]) if first else now_ms
    metrics.intake_lag_seconds.set(max(now_ms - oldest_ms, 0) / 1000)
    for n, portal in enumerate(names):
        pause_ttl, halt_ttl, why, moved = replies[5 + 4 * n : 9 + 4 * n]
        operating = why == b"operating"
        paused = metrics.portal_paused
        paused.labels(portal=portal, reason="rate_limit").set(1 if pause_ttl > 0 and not operating else 0)
        paused.labels(portal=portal, reason="operating").set(1 if pause_ttl > 0 and operating else 0)
        paused.labels(portal=portal, reason="halted").set(1 if halt_ttl > 0 else 0)
        move = PortalMove.from_json(moved)
        applies = move is not None and move.applies_to(portals[portal])
        metrics.portal_moved.labels(portal=portal).set(1 if applies else 0)


async def keep_gauges_fresh(
    metrics: Metrics, redis: Redis, keys: Keys, portals: Mapping[str, PortalConfig], *, every_s: float = 5.0
) -> None:
    """Refresh the Redis gauges forever (cancel to stop); a Redis error is logged, not fatal."""
    while True:
        try:
            await refresh_gauges(metrics, redis, keys, portals)
        except RedisError as exc:
            log.warning("metrics.refresh_failed", error=str(exc))
        await asyncio.sleep(every_s)


def metrics_routes(metrics: Metrics) -> list[web.RouteDef]:
    """``GET /metrics`` for an aiohttp app."""

    async def handler(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return [web.get("/metrics", handler)]


@contextlib.asynccontextmanager
async def metrics_server(metrics: Metrics, *, host: str, port: int) -> AsyncIterator[web.AppRunner]:
    """Serve ``/metrics`` on ``host:port`` while the block runs."""
    app = web.Application()
    app.add_routes(metrics_routes(metrics))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    try:
        yield runner
    finally:
        await runner.cleanup()
