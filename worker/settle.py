"""How a job run ends: the final outcome written once, or the job put back to wait.

Every path of :mod:`worker.runner` and :mod:`worker.failures` ends in one of these: :func:`end_job`
(a final outcome), :func:`put_back` (wait until an instant) or :func:`retry_at` (the next try,
inside business hours and before the deadline, else expired). Each returns what the job function
returns: seconds until the job runs again, or None.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import structlog

from schemas.calendar import Expired, earliest_run
from schemas.job import CallbackJob
from schemas.outcome import ErrorCode, OutcomeError, Status, outcome_for
from schemas.records import JobRecord
from worker.deps import Deps
from worker.errors import BitrixApiError, BitrixCallError, BitrixHttpError

log = structlog.get_logger("callq.worker")

WAITING = "scheduled,retrying"


async def retry_at(
    deps: Deps,
    record: JobRecord,
    wanted: datetime,
    *,
    now: datetime,
    error: BitrixCallError,
    attempts: int | None = None,
    allowed: str = "running",
) -> float | None:
    """Schedule the next try inside business hours and before the deadline, or expire.

    Args:
        deps: The worker's collaborators.
        record: The job's record.
        wanted: The earliest instant the next try should be.
        now: The current time.
        error: The error that made this attempt fail (named in the outcome if the job expires).
        attempts: The attempt count to store if the job ends; None keeps the record's.
        allowed: The state the job must be in to be put back (the ledger's ``allowed``).

    Returns:
        Seconds until the next try, or None if the job ended or was cancelled meanwhile.
    """
    portal = deps.settings.portals[record.job.portal]
    job = record.job
    decision = earliest_run(
        portal.calendar_for(job.from_line), now=wanted, not_before=job.not_before_at, deadline=job.deadline_at
    )
    if isinstance(decision, Expired):
        last = error_of(error)[1]
        return await end_job(deps, record, Status.EXPIRED, attempts=attempts,
                             error=(ErrorCode.DEADLINE_PASSED, f"{decision.reason}; last error: {last}"))  # fmt: skip
    deps.metrics.retries.labels(portal=job.portal, code=error_of(error)[0]).inc()
    return await put_back(deps, record, state=Status.RETRYING, run_at=decision.at, now=now, allowed=allowed)


async def put_back(
    deps: Deps,
    record: JobRecord,
    *,
    state: Status,
    run_at: datetime,
    now: datetime,
    allowed: str = WAITING,
    field: tuple[str, str] | None = None,
) -> float | None:
    """Put the job back to wait until ``run_at`` in state ``state``.

    Args:
        deps: The worker's collaborators.
        record: The job's record.
        state: The state it waits in (``scheduled`` or ``retrying``).
        run_at: When it runs again.
        now: The current time.
        allowed: The states it may be put back from (a comma list).
        field: One more record field to set, as (name, value): the rate-limit slots held.

    Returns:
        Seconds until ``run_at`` (at least 0), or None if the job was cancelled meanwhile.
    """
    result = await deps.ledger.reschedule(
        record.job_id, state=state, run_at=run_at, allowed=allowed, field=field
    )
    if result != "ok":
        return None  # cancelled meanwhile
    log.info("job.deferred", state=str(state), run_at=run_at.isoformat())
    return max((run_at - now).total_seconds(), 0.0)


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

    Returns:
        None: nothing is left to run.
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
        outcome, job=job, dedupe_window_s=dedupe_window_s, attempt=attempt_entry
    )
    if result.written:
        deps.metrics.jobs_finished.labels(portal=job.portal, status=str(status)).inc()
        log.info("job.finished", status=str(status), attempts=outcome.attempts, call_id=call_id,
                 error_code=error[0] if error else None)  # fmt: skip
    return None  # a final outcome: nothing left to run


def error_of(error: BitrixCallError, lead: str = "") -> tuple[str, str]:
    """The (code, description) an outcome stores for ``error``; the description after ``lead: ``.

    Pure. A part that is blank is left out with its separator: never a doubled space or an empty
    ``()``.
    """
    text = error.description.strip()
    if isinstance(error, BitrixApiError):
        code = (error.code or "").strip() or "BITRIX_ERROR"
        status = f"HTTP {error.http_status}"
        text = f"{text} ({status})" if text else status
    elif isinstance(error, BitrixHttpError):
        code = f"HTTP_{error.http_status}"
    else:
        code = "TRANSPORT_ERROR"
    lead = lead.strip()
    return code, f"{lead}: {text}" if lead and text else lead or text
