"""Submissions that end on arrival, without a job to run: rejected, expired, duplicate, key reused.

Each is recorded as a final outcome (the record, and the entry on ``{p}:outcomes``) in one ledger
step, so every submission that enters ends in exactly one outcome. :class:`producers.api.Producer`
decides which; these only write it and say what happened.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import structlog

from producers.results import ReplayRefused, Submitted
from producers.validation import FieldError, Invalid
from schemas.policy.redact import mask_number
from schemas.states import Status
from schemas.store.ledger import Ledger
from schemas.store.replies import FinalizeResult, FinalizeVerdict
from schemas.wire.codes import ErrorCode
from schemas.wire.job import CallbackJob
from schemas.wire.outcome import Outcome, OutcomeError, outcome_for

log = structlog.get_logger("callq.producers")


async def reject(
    ledger: Ledger, job_id: str, invalid: Invalid, *, now: datetime, intake_id: str | None = None
) -> Submitted:
    """Record input that cannot become a job as ``rejected`` (``INVALID_JOB``, with the field errors)."""
    error = OutcomeError(
        code=ErrorCode.INVALID_JOB,
        description=invalid.description,
        fields=[e.to_dict() for e in invalid.errors],
    )
    echo = invalid.echo
    outcome = Outcome(
        job_id=job_id,
        status=Status.REJECTED,
        portal=echo.get("portal"),
        from_line=echo.get("from_line"),
        idempotency_key=echo.get("idempotency_key"),
        metadata=echo.get("metadata"),
        attempts=0,
        finished_at=now.astimezone(UTC).isoformat(),
        error=error,
        intake_id=intake_id,
    )
    result = await ledger.record_final(outcome, job=None)
    if result.written:
        log.info("job.rejected", job_id=job_id, error=invalid.description, intake_id=intake_id)
    return Submitted(job_id=job_id, status=Status.REJECTED, new=False, error=error)


async def expire(ledger: Ledger, job: CallbackJob, *, reason: str | None, now: datetime) -> Submitted:
    """Record a valid job that can never run before its deadline as ``expired``."""
    error = OutcomeError(code=ErrorCode.DEADLINE_PASSED, description=reason or "deadline passed")
    outcome = outcome_for(job, Status.EXPIRED, at=now, error=error)
    _refused_replay(await ledger.record_final(outcome, job=job))
    log.info("job.expired", job_id=job.job_id, portal=job.portal, reason=error.description)
    return Submitted(job_id=job.job_id, status=Status.EXPIRED, new=False, error=error)


async def duplicate(ledger: Ledger, job: CallbackJob, *, holder: str, now: datetime) -> Submitted:
    """Record a job whose line + number (or, through the stream, key) ``holder`` has: ``duplicate``."""
    outcome = outcome_for(job, Status.DUPLICATE, at=now, duplicate_of=holder)
    key = (job.portal, job.idempotency_key) if job.idempotency_key else None
    _refused_replay(await ledger.record_final(outcome, job=job, idempotency_key=key))
    bound = log.bind(job_id=job.job_id, portal=job.portal, line=job.from_line)
    bound.info("job.duplicate", duplicate_of=holder, to_number=mask_number(job.to_number))
    return Submitted(job_id=job.job_id, status=Status.DUPLICATE, new=False, duplicate_of=holder)


async def key_reused(
    ledger: Ledger, job: CallbackJob, *, holder: str, differing: list[FieldError], now: datetime
) -> Submitted:
    """Record a known idempotency key sent with a different request: ``rejected`` with code
    ``IDEMPOTENCY_KEY_REUSED``, ``error.fields`` naming what differs and ``existing_job_id``."""
    names = [e.field for e in differing]
    error = OutcomeError(
        code=ErrorCode.IDEMPOTENCY_KEY_REUSED,
        description=f"the idempotency key belongs to job {holder}, made from a different request "
        f"({', '.join(names)} differ{'s' if len(names) == 1 else ''})",
        fields=[e.to_dict() for e in differing],
    )
    outcome = outcome_for(job, Status.REJECTED, at=now, error=error)
    await ledger.record_final(dataclasses.replace(outcome, extra={"existing_job_id": holder}), job=job)
    bound = log.bind(job_id=job.job_id, portal=job.portal, intake_id=job.intake_id)
    bound.info("job.key_reused", existing_job_id=holder, fields=names)
    return Submitted(
        job_id=job.job_id, status=Status.REJECTED, new=False, error=error, existing_job_id=holder
    )


def _refused_replay(result: FinalizeResult) -> None:
    """A replay's outcome the store refused: the dead job was replayed (or purged) meanwhile."""
    if result.verdict is FinalizeVerdict.REFUSED:
        raise ReplayRefused(result.state)
