"""The reconciler: attempts left ``running`` with nobody working on them get an outcome.

Every attempt takes a lease before its request (:mod:`worker.jobs.leases`). A lease lapses only when its
worker died, or lost Redis for longer than the lease; arq may then hand the job to another worker,
or (if arq gave the job up) nobody ever looks at it again. Every worker therefore looks, every few
seconds, for attempts whose lease lapsed, and ends each one as a worker that found it
interrupted would (:func:`worker.jobs.failures.handle_interrupted`): ``dead``/``OUTCOME_UNKNOWN``, or
retried at once on a portal with ``retry_unknown``. Its request may have rung the client, so it is
never re-sent blindly.

The bound: an attempt whose worker died ends within ``lease_s + reconcile_every_s`` (about 25 s by
default) of the worker's last heartbeat, once Redis answers. A worker only judges while its own
Redis writes have gone through promptly for ``grace_s``, and each verdict is written only if the
lease is still lapsed when the write runs and Redis did not stall in between: an owner that was cut
off by the same outage renews its lease, or writes its result, first.
"""

from __future__ import annotations

import asyncio
import random

import structlog
from redis.exceptions import RedisError

from schemas.policy.log_redaction import KNOWN_NUMBERS, bind_job_number
from schemas.states import Status
from schemas.wire.codes import ErrorCode
from worker.jobs.deps import Deps
from worker.jobs.failures import handle_interrupted
from worker.jobs.settle import end_job

log = structlog.get_logger("callq.worker")

EVENT_ORPHAN = "job.orphan_found"
EVENT_RECONCILE_FAILED = "reconciler.failed"
BATCH = 100


async def reconcile_once(deps: Deps) -> int:
    """End the attempts whose lease lapsed, if this process may judge. Returns how many it looked at."""
    if not deps.leases.may_judge():
        return 0
    seen_ms, job_ids = await deps.ledger.orphan_candidates(limit=BATCH)
    for job_id in job_ids:
        if not deps.leases.may_judge():
            break
        await _judge(deps, job_id, seen_ms=seen_ms)
    return len(job_ids)


async def _judge(deps: Deps, job_id: str, *, seen_ms: int) -> None:
    record = await deps.ledger.read(job_id)
    if record is None or record.state != Status.RUNNING:
        await deps.ledger.forget_running(job_id)
        return
    portal = deps.settings.portals.get(record.job.portal)
    structlog.contextvars.bind_contextvars(job_id=job_id, portal=record.job.portal, line=record.job.from_line)
    bind_job_number(record.job.to_number)
    try:
        log.warning(EVENT_ORPHAN, attempt=record.attempts)
        deps.metrics.orphans_ended.labels(portal=record.job.portal).inc()
        if portal is None:
            # nothing can be run for an unconfigured portal; end it like any interrupted attempt
            await end_job(
                deps,
                record,
                Status.DEAD,
                error=(ErrorCode.OUTCOME_UNKNOWN, f"attempt {record.attempts} was interrupted"),
                orphan_seen_ms=seen_ms,
            )
            return
        await handle_interrupted(deps, record, portal, attempt=record.attempts, seen_ms=seen_ms)
    finally:
        structlog.contextvars.unbind_contextvars("job_id", "portal", "line", KNOWN_NUMBERS)


async def keep_reconciling(deps: Deps) -> None:
    """Reconcile every ``reconcile_every_s`` (jittered) until cancelled; a Redis error is logged, not fatal."""
    every_s = deps.leases.timing.reconcile_every_s
    while True:
        await asyncio.sleep(every_s * (0.75 + random.random() / 2))
        try:
            await reconcile_once(deps)
        except (RedisError, OSError) as exc:
            log.warning(EVENT_RECONCILE_FAILED, error=type(exc).__name__)
