"""The final outcome record of a job (contract §5): appended to ``{p}:outcomes`` and kept in its record."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime
from typing import Any

from schemas.policy.redact import number_spellings, redact_text
from schemas.states import Status
from schemas.wire.job import CallbackJob


@dataclass(frozen=True)
class OutcomeError:
    """``error`` of an outcome: a code and a human description; ``fields`` for rejections."""

    code: str
    description: str
    fields: list[dict[str, str]] | None = None

    def redacted(self, numbers: Sequence[str] = ()) -> OutcomeError:
        """This error with numbers and secrets masked (code, description, each field error), as stored.

        Args:
            numbers: spellings of the job's number, masked exactly (:func:`schemas.policy.redact.number_spellings`).
        """
        fields = self.fields
        if fields is not None:
            fields = [{k: redact_text(v, numbers=numbers) for k, v in item.items()} for item in fields]
        return OutcomeError(
            code=redact_text(self.code, numbers=numbers),
            description=redact_text(self.description, numbers=numbers),
            fields=fields,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, without ``fields`` when there are none."""
        data: dict[str, Any] = {"code": self.code, "description": self.description}
        if self.fields is not None:
            data["fields"] = self.fields
        return data


@dataclass(frozen=True)
class Outcome:
    """One final outcome, as appended to ``{p}:outcomes`` and kept in the job record."""

    job_id: str
    status: Status
    portal: str | None
    from_line: str | None
    idempotency_key: str | None
    metadata: dict[str, Any] | None
    attempts: int
    finished_at: str
    call_id: str | None = None
    error: OutcomeError | None = None
    duplicate_of: str | None = None
    intake_id: str | None = None
    replay_of: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; optional fields absent when unset, the contract's always present."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}  # shallow: asdict() deep-copies
        data["status"] = str(self.status)
        data["error"] = self.error.to_dict() if self.error else None
        extra = data.pop("extra")
        for optional in ("duplicate_of", "intake_id", "replay_of"):
            if data[optional] is None:
                del data[optional]
        data.update(extra)
        return data

    def redacted(self, numbers: Sequence[str] = ()) -> Outcome:
        """This outcome with its error masked (:meth:`OutcomeError.redacted`). What the producer sent
        and gets echoed (``metadata``, ``idempotency_key``) is left as it is: the contract echoes it."""
        return self if self.error is None else replace(self, error=self.error.redacted(numbers))

    def to_json(self) -> str:
        """Encode for the outcome stream."""
        return json.dumps(self.to_dict(), separators=(",", ":"), ensure_ascii=False)


def outcome_for(
    job: CallbackJob,
    status: Status,
    *,
    at: datetime,
    attempts: int = 0,
    call_id: str | None = None,
    error: OutcomeError | None = None,
    duplicate_of: str | None = None,
) -> Outcome:
    """The final outcome of ``job``, echoing what the producer sent (metadata, key, intake entry)."""
    return Outcome(
        job_id=job.job_id,
        status=status,
        portal=job.portal,
        from_line=job.from_line,
        idempotency_key=job.idempotency_key,
        metadata=job.metadata,
        attempts=attempts,
        finished_at=at.astimezone(UTC).isoformat(),
        call_id=call_id,
        error=error,
        duplicate_of=duplicate_of,
        intake_id=job.intake_id,
        replay_of=job.replay_of,
    )


_OUTSIDE_TEXT = ("code", "description")
"""The members of an attempt entry that hold text from outside (a portal's answer, an exception)."""


def _numbers(job: CallbackJob | None) -> tuple[str, ...]:
    return number_spellings(job.to_number) if job is not None and job.to_number else ()


def stored_outcome(outcome: Outcome, job: CallbackJob | None) -> Outcome:
    """The outcome as stored: its error masked, whoever built it (the last guard before Redis)."""
    return outcome if outcome.error is None else outcome.redacted(_numbers(job))


def stored_attempt_entry(entry: dict[str, Any], job: CallbackJob | None) -> dict[str, Any]:
    """An attempt entry as stored: its code and description masked (a success has neither)."""
    if not any(isinstance(entry.get(name), str) for name in _OUTSIDE_TEXT):
        return entry
    numbers = _numbers(job)
    return {
        k: redact_text(v, numbers=numbers) if k in _OUTSIDE_TEXT and isinstance(v, str) else v
        for k, v in entry.items()
    }
