"""A job record as read back: the hash ``{p}:job:{id}`` decoded into a :class:`JobRecord`.

Also the unix-millisecond encoding of the times the record (and the Lua scripts) store.
:mod:`schemas.store.ledger` writes records; this module only reads them, without I/O.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from schemas.states import CallState, Status
from schemas.store.compact import (
    CALL_RESULT_FIELD,
    has_outcome,
    read_call_result,
    read_outcome,
    unpack_attempt,
)
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
    call: CallFollowUp | None = None  # the follow-up of a succeeded job's call (issue 14)


@dataclass(frozen=True)
class CallFollowUp:
    """A succeeded job's call, followed to its end (the record's ``call*`` fields).

    Attributes:
        state: the follow-up's state (:class:`schemas.states.CallState`).
        call_id: the CALL_ID followed now (the last one placed).
        attempt: the attempt that placed it.
        since_ms: when it was placed (unix ms): the horizon counts from here.
        polls: statistics requests made for it so far.
        redials: redials started for the job.
        results: each call's end, by the attempt that placed it.
        final: the final call result, once ended (what the outcome stream got).
    """

    state: CallState
    call_id: str | None
    attempt: int
    since_ms: int
    polls: int
    redials: int
    results: dict[int, dict[str, Any]]
    final: dict[str, Any] | None

    def to_view(self) -> dict[str, Any]:
        """How ``callq status --json`` and ``GET /v1/callbacks/{id}`` show it."""
        return {
            "state": str(self.state),
            "call_id": self.call_id,
            "redials": self.redials,
            "calls": [{"attempt": n, **result} for n, result in sorted(self.results.items())],
            "result": self.final,
        }


def decode_call(data: dict[str, str], job: CallbackJob | None = None) -> CallFollowUp | None:
    """The follow-up of a decoded record hash, or None when it has none (``job``: the record's, to
    read a final call result stored compact)."""
    if "call" not in data:
        return None
    results = {
        int(key.split(":", 1)[1]): json.loads(value)
        for key, value in data.items()
        if key.startswith("call:") and key.split(":", 1)[1].isdigit()
    }
    return CallFollowUp(
        state=CallState(data["call"]),
        call_id=data.get("call_id"),
        attempt=int(data.get("call_attempt", 0)),
        since_ms=int(data.get("call_since", 0)),
        polls=int(data.get("call_polls", 0)),
        redials=int(data.get("redials", 0)),
        results=results,
        final=_final_call(data, job, results),
    )


def _final_call(
    data: dict[str, str], job: CallbackJob | None, results: dict[int, dict[str, Any]]
) -> dict[str, Any] | None:
    if "call_result" in data:
        return cast(dict[str, Any], json.loads(data["call_result"]))
    last = results.get(int(data.get("call_attempt", 0)))
    if CALL_RESULT_FIELD not in data or job is None or last is None:
        return None
    return read_call_result(data[CALL_RESULT_FIELD], job, last)


def decode_record(job_id: str, raw: dict[Any, Any], *, queue_ms: float | None = None) -> JobRecord | None:
    """Decode a record hash (None when it does not exist).

    Args:
        job_id: the record's job.
        raw: its fields (``HGETALL``).
        queue_ms: the job's score in arq's queue, if known: its ``run_at`` while it waits and its
            record has none (admission stores none: the queue says it).
    """
    if not raw:
        return None
    data = {decode_text(key): decode_text(value) for key, value in raw.items()}
    job_json = data.get("job", "null")
    outcome = json.loads(data["outcome"]) if "outcome" in data else None
    if job_json != "null":
        job = CallbackJob.from_json(job_json, job_id)  # final on arrival, or admitted up to 0.3
    elif RECORD_FIELDS["portal"] in data:
        job = CallbackJob.from_fields(data, job_id)
    else:
        job = _placeholder_job(job_id, outcome)
    if outcome is None and has_outcome(data):
        outcome = read_outcome(data, job, data.get("state", ""))
    call_id = outcome.get("call_id") if outcome else None
    attempts = sorted(
        (int(key.split(":", 1)[1]), unpack_attempt(value, call_id=call_id))
        for key, value in data.items()
        if key.startswith("attempt:")
    )
    return JobRecord(
        job_id=job_id,
        state=Status(data.get("state", "rejected")),
        job=job,
        attempts=int(data.get("attempts", 0)),
        run_at=_run_at(data, queue_ms),
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
        call=decode_call(data, job),
    )


def _run_at(data: dict[str, str], queue_ms: float | None) -> datetime | None:
    if "run_at" in data:
        return from_ms(data["run_at"])
    waiting = data.get("state") in (Status.SCHEDULED, Status.RETRYING)
    return from_ms(int(queue_ms)) if waiting and queue_ms is not None else None


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
