"""How a job record is shown to people and clients: ``callq status --json`` and ``GET /v1/callbacks/{id}``.

Numbers are masked; the portal's halt, while one lasts, and its move to another address, while the
configuration names the old one, are read alongside.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.asyncio import Redis

from schemas.config import Settings
from schemas.policy.redact import SHAPES, Redactor, mask_number, number_spellings
from schemas.store.keys import Keys
from schemas.store.portal_moves import read_move
from schemas.store.records import JobRecord


def record_view(record: JobRecord, *, settings: Settings) -> dict[str, Any]:
    """A job record as shown by ``status --json`` (numbers masked)."""
    portal = settings.portals.get(record.job.portal)
    tz = portal.timezone if portal else UTC
    return {
        "job_id": record.job_id,
        "status": str(record.state),
        "run_at": iso_utc(record.run_at),
        "run_at_local": iso_utc(record.run_at.astimezone(tz)) if record.run_at else None,
        "timezone": str(tz),
        "portal": record.job.portal or None,
        "from_line": record.job.from_line or None,
        "to_number": mask_number(record.job.to_number) if record.job.to_number else None,
        "idempotency_key": record.job.idempotency_key,
        "metadata": record.job.metadata,
        "deadline": record.job.deadline,
        "attempts": record.attempts,
        "attempt_log": record.attempt_log,
        "outcome": record.outcome,
        "call": record.call.to_view() if record.call is not None else None,
    }


def shown_view(record: JobRecord, *, settings: Settings, redactor: Redactor = SHAPES) -> dict[str, Any]:
    """A job record as the dashboard shows it: :func:`record_view` plus the text to pronounce, with every
    string masked as ``callq status --json`` prints it (numbers by shape and the job's own in every
    spelling, the configured secrets ``redactor`` knows; the line id stays as it is)."""
    view = record_view(record, settings=settings)
    view["text_to_pronounce"] = record.job.text_to_pronounce
    masked: dict[str, Any] = redactor.value(view, numbers=job_numbers(record), kept=_lines(record))
    return masked


def shown_text(record: JobRecord, *, redactor: Redactor = SHAPES) -> str:
    """The free text of a record as the dashboard shows it, masked like :func:`shown_view` (job id, text
    to pronounce, idempotency key, metadata): what a text search may match, so that it never finds what
    the page hides."""
    return redactor.text(raw_text(record), job_numbers(record), _lines(record))


def raw_text(record: JobRecord) -> str:
    """The free text of a record before masking (what :func:`shown_text` masks): for a cheap
    pre-test only, never shown."""
    job = record.job
    return " ".join(
        [job.job_id, job.text_to_pronounce or "", job.idempotency_key or "", json.dumps(job.metadata or "")]
    )


def shown_text_to_pronounce(record: JobRecord, *, redactor: Redactor = SHAPES) -> str:
    """The text to pronounce as the dashboard shows it, masked like :func:`shown_view`."""
    return redactor.text(record.job.text_to_pronounce or "", job_numbers(record), _lines(record))


def job_numbers(record: JobRecord) -> tuple[str, ...]:
    """The job's number in every spelling (masked exactly wherever it occurs)."""
    return number_spellings(record.job.to_number) if record.job.to_number else ()


def _lines(record: JobRecord) -> tuple[str, ...]:
    return (record.job.from_line,) if record.job.from_line else ()


async def portal_halt(redis: Redis, settings: Settings, portal: str) -> dict[str, Any] | None:
    """Why and until when a portal is halted (credentials refused, manual block), or None."""
    key = Keys(settings.key_prefix).portal_halt(portal)
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(key)
        pipe.pttl(key)
        raw, ttl_ms = await pipe.execute()
    if raw is None:
        return None
    reason: dict[str, Any] = json.loads(raw)
    reason["until"] = (datetime.now(UTC) + timedelta(milliseconds=max(int(ttl_ms), 0))).isoformat()
    return reason


async def portal_move(redis: Redis, settings: Settings, portal: str) -> dict[str, str] | None:
    """Where a portal moved (``from``, ``to``, ``since``) while the configuration names its old address."""
    config = settings.portals.get(portal)
    move = await read_move(redis, Keys(settings.key_prefix), portal)
    return move.to_dict() if move is not None and config is not None and move.applies_to(config) else None


def iso_utc(moment: datetime | None) -> str | None:
    """RFC 3339 text of ``moment`` (None stays None)."""
    return (
        moment.astimezone(UTC).isoformat()
        if moment and moment.tzinfo is UTC
        else (moment.isoformat() if moment else None)
    )
