"""Run a waiting job at another time: the dashboard's "run at another time".

A put-back (step ``put_back``, ``scheduled`` → ``scheduled``, ``retrying`` → ``retrying``, in
``reschedule.lua``) that also rewrites the job's ``not_before`` in the same step, so the worker, which
reads the calendar from the job, agrees with the new time. The new time is moved to the line's next
opening like any ``not_before``; a time past the job's deadline is refused, not silently expired.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import structlog

from producers.api import Producer
from schemas.policy.calendar import Expired, earliest_run
from schemas.states import STARTABLE_STATUSES, Status
from schemas.store.records import JobRecord
from schemas.store.replies import RescheduleVerdict

log = structlog.get_logger("callq.producers")


class NotReschedulable(ValueError):
    """The job cannot run at that time (not waiting any more, or past its deadline)."""


async def run_at_another_time(producer: Producer, record: JobRecord, *, at: datetime) -> datetime:
    """Move a waiting job to ``at`` (its line's next opening from then).

    Returns:
        The new ``run_at``.

    Raises:
        NotReschedulable: the job is not ``scheduled``/``retrying``, its portal is gone, or ``at``
            is past its deadline (nothing changed).
    """
    if record.state not in STARTABLE_STATUSES:
        raise NotReschedulable(f"job {record.job_id} is {record.state}: only a waiting job can be moved")
    portal = producer.settings.portals.get(record.job.portal)
    if portal is None:
        raise NotReschedulable(f"portal {record.job.portal!r} is not configured")
    now = producer.clock()
    calendar = portal.calendar_for(record.job.from_line)
    decision = earliest_run(calendar, now=now, not_before=at, deadline=record.job.deadline_at)
    if isinstance(decision, Expired):
        raise NotReschedulable(f"cannot run then: {decision.reason}")
    job = dataclasses.replace(record.job, not_before=at.isoformat())
    result = await producer.ledger.reschedule(
        record.job_id,
        state=record.state,
        run_at=decision.at,
        expect={Status(record.state)},
        fields={"job": job.to_json()},
    )
    if result.verdict is not RescheduleVerdict.OK:
        raise NotReschedulable(f"job {record.job_id} changed meanwhile ({result.state or result.verdict})")
    return decision.at
