"""A job record as read back: the hash ``{p}:job:{id}`` decoded into a :class:`JobRecord`.

Also the unix-millisecond encoding of the times the record (and the Lua scripts) store.
:mod:`schemas.store.ledger` writes records; this module only reads them, without I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from schemas.states import Status
from schemas.wire.job import RECORD_FIELDS, CallbackJob, parse_rfc3339


def to_ms(moment: datetime) -> int:
    """Unix milliseconds of an aware datetime."""
    return int(moment.timestamp() * 1000)


def from_ms(ms: int | str | bytes) -> datetime:
    """Aware UTC datetime from unix milliseconds."""
    return datetime.fromtimestamp(int(ms) / 1000, tz=UTC)


@dataclass(frozen=True)
class JobRecord:
    """A job record as read back."""

    job_id: str
    state: Status
    job: CallbackJob
    attempts: int
    run_at: datetime | None
    outcome: dict[str, Any] | None
    attempt_log: list[dict[str, Any]]
    created_at: datetime | None
    slots: dict[str, int]  # rate-limit reservations held for the next attempt: name -> unix ms


def decode_record(job_id: str, raw: dict[Any, Any]) -> JobRecord | None:
    """Decode a record hash (None when it does not exist)."""
    if not raw:
        return None
    data = {decode_text(key): decode_text(value) for key, value in raw.items()}
    attempts = sorted(
        (int(key.split(":", 1)[1]), json.loads(value))
        for key, value in data.items()
        if key.startswith("attempt:")
    )
    job_json = data.get("job", "null")
    outcome = json.loads(data["outcome"]) if "outcome" in data else None
    if job_json != "null":
        job = CallbackJob.from_json(job_json, job_id)  # final on arrival, or admitted up to 0.3
    elif RECORD_FIELDS["portal"] in data:
        job = CallbackJob.from_fields(data, job_id)
    else:
        job = _placeholder_job(job_id, outcome)
    return JobRecord(
        job_id=job_id,
        state=Status(data.get("state", "rejected")),
        job=job,
        attempts=int(data.get("attempts", 0)),
        run_at=from_ms(data["run_at"]) if "run_at" in data else None,
        outcome=outcome,
        attempt_log=[entry for _, entry in attempts],
        created_at=(
            from_ms(data["created_at"])
            if "created_at" in data
            else parse_rfc3339(job.created_at)
            if job.created_at
            else None
        ),
        slots=json.loads(data["slots"]) if "slots" in data else {},
    )


def decode_text(value: str | bytes, *, errors: str = "strict") -> str:
    """A Redis reply as text, whether the client decodes responses or not (UTF-8; ``errors`` as
    :meth:`bytes.decode` takes it: ``"replace"`` where bytes from outside must not stop a reader)."""
    return value.decode("utf-8", errors) if isinstance(value, bytes) else value


def _placeholder_job(job_id: str, outcome: dict[str, Any] | None) -> CallbackJob:
    """A record made from input that never became a job (a rejection) still reads as one."""
    o = outcome or {}
    return CallbackJob(
        job_id=job_id,
        portal=o.get("portal") or "",
        from_line=o.get("from_line") or "",
        to_number="",
        text_to_pronounce="",
        voice=None,
        not_before=None,
        deadline=None,
        idempotency_key=o.get("idempotency_key"),
        metadata=o.get("metadata"),
        created_at=o.get("finished_at", ""),
    )
