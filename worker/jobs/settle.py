"""How a job run ends: the final outcome written once, or the job put back to wait.

Every path of :mod:`worker.jobs.run` and :mod:`worker.jobs.failures` ends in one of these: :func:`end_job`
(a final outcome), :func:`put_back` (wait until an instant) or :func:`retry_at` (the next try,
inside business hours and before the deadline, else expired). Each returns what the job function
returns: seconds until the job runs again, or None.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import structlog
from redis.asyncio.client import Pipeline
from redis.exceptions import BusyLoadingError, NoScriptError, OutOfMemoryError, ReadOnlyError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schemas.policy.calendar import Expired, earliest_run
from schemas.states import Status
from schemas.store.errors import write_refusal
from schemas.store.ledger import Reading
from schemas.store.records import JobRecord
from schemas.store.replies import RescheduleVerdict
from schemas.wire.codes import ErrorCode
from schemas.wire.job import CallbackJob
from schemas.wire.outcome import OutcomeError, outcome_for
from worker.jobs.deps import Deps
from worker.policy.classify import Failure
from worker.policy.dropped import dropped_reason

log = structlog.get_logger("callq.worker")

WAITING = frozenset({Status.SCHEDULED, Status.RETRYING})
"""The states a job waits in: put back from one of these, it is not running anywhere."""

RUNNING = frozenset({Status.RUNNING})
"""A job whose attempt failed is put back from ``running`` (by the worker that ran it)."""

EVENT_BOOKKEEPING_RETRY = "job.bookkeeping_retry"
EVENT_RESULT_DROPPED = "job.result_dropped"
"""An attempt's end that its record no longer takes: ended by the reconciler meanwhile (the worker
was frozen or cut off longer than its lease), superseded by a later attempt, or gone with a Redis
that restarted empty. The log line is then the only trace besides the portal's call history."""
T = TypeVar("T")

HELD_MARGIN_S = 600.0
"""A portal's set of jobs waiting out its halt outlives the halt by this much (then it is moot)."""


REDIS_TROUBLE = (
    NoScriptError,  # Redis restarted between redis-py's script load and its send: nothing ran
    RedisConnectionError,
    RedisTimeoutError,
    OutOfMemoryError,
    BusyLoadingError,
    ReadOnlyError,
    OSError,
)
"""What a Redis that stalls, restarts or fails over raises: wait for it, then write. A Redis that
refuses writes (full, ``MISCONF``, ``READONLY``, ``NOREPLICAS``: :func:`schemas.store.errors.write_refusal`)
is waited for too."""


async def durably(what: str, step: Callable[[], Awaitable[T]], *, max_wait_s: float = 5.0) -> T:
    """Run ``step`` (one step of bookkeeping after a request, safe to repeat) until Redis takes it.

    A request's result is never thrown away because Redis was slow, restarting, failing over or
    full while it was being written: every step after a request is an atomic script that finds its
    own earlier run (a repeated FINALIZE finds the job final), so it is retried, with backoff, for
    as long as this process lives. Only a stop of the process can cut it off; the attempt is then
    ended by the reconciler (:mod:`worker.jobs.orphans`) as an unknown result.
    """
    delay_s, waited_s = 0.2, 0.0
    while True:
        try:
            return await step()
        except Exception as exc:
            if not isinstance(exc, REDIS_TROUBLE) and write_refusal(exc) is None:
                raise
            log.warning(
                EVENT_BOOKKEEPING_RETRY, step=what, error=type(exc).__name__, waited_s=round(waited_s, 1)
            )
        await asyncio.sleep(delay_s)
        waited_s += delay_s
        delay_s = min(delay_s * 2, max_wait_s)


async def defer_busy(deps: Deps, job_id: str) -> float:
    """The job's attempt is in flight in another worker (its lease lives): look again later."""
    delay_s = deps.leases.timing.lease_s
    await deps.ledger.defer(job_id, delay_s=delay_s)
    log.info("job.attempt_busy", retry_in_s=delay_s)
    return delay_s


async def retry_at(
    deps: Deps,
    record: JobRecord,
    wanted: datetime,
    *,
    now: datetime,
    failure: Failure,
    attempts: int | None = None,
    expect: frozenset[Status] = RUNNING,
    held_by: str | None = None,
    held_s: float = 0.0,
    fields: dict[str, str] | None = None,
    orphan_seen_ms: int | None = None,
) -> float | None:
    """Schedule the next try inside business hours and before the deadline, or expire.

    Args:
        deps: The worker's collaborators.
        record: The job's record.
        wanted: The earliest instant the next try should be.
        now: The current time.
        failure: What made this attempt fail (named in the outcome if the job expires).
        attempts: The attempt count to store if the job ends; None keeps the record's.
        expect: The states the job must be in to be put back.
        held_by: The portal whose halt or pause the job waits out (``callq resume`` wakes it).
        held_s: How long that halt or pause lasts.
        fields: More record fields to write in the same step (a closed attempt entry).
        orphan_seen_ms: Act only if the job's attempt is orphaned (:mod:`worker.jobs.orphans`).

    Returns:
        Seconds until the next try, or None if the job ended or was cancelled meanwhile.
    """
    portal = deps.settings.portals[record.job.portal]
    job = record.job
    decision = earliest_run(
        portal.calendar_for(job.from_line), now=wanted, not_before=job.not_before_at, deadline=job.deadline_at
    )
    if isinstance(decision, Expired):
        last = failure.outcome_error()[1]
        attempt = attempt_of(fields)
        return await end_job(
            deps,
            record,
            Status.EXPIRED,
            attempts=attempts,
            error=(ErrorCode.DEADLINE_PASSED, f"{decision.reason}; last error: {last}"),
            attempt_entry=attempt,
            orphan_seen_ms=orphan_seen_ms,
        )
    deps.metrics.retries.labels(portal=job.portal, code=failure.outcome_error()[0]).inc()
    return await put_back(
        deps,
        record,
        state=Status.RETRYING,
        run_at=decision.at,
        now=now,
        expect=expect,
        held_by=held_by,
        held_s=held_s,
        fields=fields,
        orphan_seen_ms=orphan_seen_ms,
    )


def attempt_of(fields: dict[str, str] | None) -> tuple[int, dict[str, Any]] | None:
    """The closed attempt entry among ``fields`` (``attempt:N``), for an outcome written instead."""
    for name, value in (fields or {}).items():
        if name.startswith("attempt:"):
            return int(name.split(":", 1)[1]), json.loads(value)
    return None


async def put_back(
    deps: Deps,
    record: JobRecord,
    *,
    state: Status,
    run_at: datetime,
    now: datetime,
    expect: frozenset[Status] = WAITING,
    fields: dict[str, str] | None = None,
    held_by: str | None = None,
    held_s: float = 0.0,
    orphan_seen_ms: int | None = None,
) -> float | None:
    """Put the job back to wait until ``run_at`` in state ``state`` (its place in the queue too).

    Args:
        deps: The worker's collaborators.
        record: The job's record.
        state: The state it waits in (``scheduled`` or ``retrying``).
        run_at: When it runs again.
        now: The current time.
        expect: The states it may be put back from.
        fields: More record fields to set: the rate-limit slots held, a closed attempt entry.
        held_by: The portal whose halt or rate pause it waits out, so ``callq resume`` wakes it.
        held_s: How long that halt or pause lasts.
        orphan_seen_ms: Only if the job's attempt is orphaned (:mod:`worker.jobs.orphans`).

    Returns:
        Seconds until ``run_at`` (at least 0), or None if the job was cancelled meanwhile.
    """
    result = await deps.ledger.reschedule(
        record.job_id,
        state=state,
        run_at=run_at,
        expect=expect,
        fields=fields,
        held_by=held_by,
        held_ttl_s=held_s + HELD_MARGIN_S,
        orphan_seen_ms=orphan_seen_ms,
        owner=deps.attempt_token,
    )
    if result.verdict is RescheduleVerdict.BUSY:
        return await defer_busy(deps, record.job_id)
    if result.verdict is not RescheduleVerdict.OK:
        if deps.attempt_token:
            result_dropped(
                deps, record.job.portal, meant=str(state), found=str(result.verdict), state=result.state
            )
        return None  # cancelled, or finished, meanwhile
    log.info("job.deferred", state=str(state), run_at=run_at.isoformat())
    return max((run_at - now).total_seconds(), 0.0)


def result_dropped(
    deps: Deps, portal: str, *, meant: str, found: str, state: str | None, **fields: Any
) -> None:
    """An attempt's end its record did not take: log :data:`EVENT_RESULT_DROPPED` and count it
    (``callq_results_dropped_total{reason}``). Every path that drops a result calls this.

    Args:
        deps: The worker's collaborators (the metrics).
        portal: The job's portal (logged).
        meant: The state or status the attempt meant to write.
        found: The script's verdict.
        state: The state the script found.
        fields: More to log (the call id, the error code).
    """
    reason = dropped_reason(found, state)
    deps.metrics.results_dropped.labels(reason=reason).inc()
    log.warning(
        EVENT_RESULT_DROPPED, portal=portal, meant=meant, found=found, state=state, reason=reason, **fields
    )


async def end_job(
    deps: Deps,
    record: JobRecord,
    status: Status,
    *,
    attempts: int | None = None,
    call_id: str | None = None,
    error: tuple[str, str] | None = None,
    dedupe_window_s: float = 0.0,
    attempt_entry: tuple[int, dict[str, Any]] | None = None,
    orphan_seen_ms: int | None = None,
    then: Callable[[Pipeline], Awaitable[Any]] | None = None,
    reading: Reading | None = None,
) -> float | None:
    """Write the job's final outcome (once: a job already final is left as it is).

    Args:
        deps: The worker's collaborators.
        record: The job's record.
        status: The final status.
        attempts: The attempt count to store; None keeps the record's.
        call_id: Bitrix24's CALL_ID, for a success.
        error: (code, description) for a failure.
        dedupe_window_s: After success, how long the line + number stays claimed.
        attempt_entry: (number, entry) of the attempt that ended it, written in the same step.
        orphan_seen_ms: Only if the job's attempt is orphaned (:mod:`worker.jobs.orphans`).
        then: One more script in the same MULTI (a success's call follow-up).
        reading: The answer's execution-time reading, kept in the same step.

    Returns:
        None: nothing is left to run (or, when the orphan's lease came alive again, the delay
        before it is looked at again).
    """
    job: CallbackJob = record.job
    outcome = outcome_for(
        job,
        status,
        at=deps.clock(),
        attempts=record.attempts if attempts is None else attempts,
        call_id=call_id,
        error=OutcomeError(code=str(error[0]), description=error[1]) if error else None,
    )
    result = await deps.ledger.finalize(
        outcome,
        job=job,
        dedupe_window_s=dedupe_window_s,
        attempt=attempt_entry,
        orphan_seen_ms=orphan_seen_ms,
        owner=deps.attempt_token,
        then=then,
        reading=reading,
    )
    if result.busy and orphan_seen_ms is not None:
        return await defer_busy(deps, job.job_id)
    if not result.written and deps.attempt_token:
        # this attempt's end, known only here: say so, since the record will not
        result_dropped(
            deps,
            job.portal,
            meant=str(status),
            found=str(result.verdict),
            state=result.state,
            call_id=call_id,
            error_code=error[0] if error else None,
        )
    if result.written:
        deps.metrics.jobs_finished.labels(portal=job.portal, status=str(status)).inc()
        log.info(
            "job.finished",
            status=str(status),
            attempts=outcome.attempts,
            call_id=call_id,
            error_code=error[0] if error else None,
        )
    return None  # a final outcome: nothing left to run
