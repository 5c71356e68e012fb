"""The compact form of a final record's outcome and of its attempt entries (issue 16's memory target).

A final record used to keep its outcome as the JSON appended to ``{p}:outcomes`` (``outcome``, ~300
bytes), most of which the record says already (the job id, portal, line, key, metadata, intake
entry, status); and each ``attempt:N`` entry as JSON with two RFC 3339 times and, for a success, the
CALL_ID again (~190 bytes). Both were over Redis's default ``hash-max-listpack-value`` (64), which
turned every finished record into a hashtable. Now:

- the outcome is stored as the members the record does not say, one field each: ``oa`` attempts,
  ``of`` finished_at (unix µs when that gives the text back, else the text), ``oc`` call_id,
  ``oe`` error (JSON), ``od`` duplicate_of; :func:`read_outcome` puts it back together, member for
  member and in the same order, so its JSON is the stream's byte for byte. An outcome that would not
  come back exactly (say, a field the job does not echo) is stored whole, as before (``outcome``).
- an attempt entry's members get one-letter names and its times unix µs (``ended_at`` as µs after
  ``started_at``, ``ed``) (:func:`pack_attempt`); a success's CALL_ID, the outcome's, is written
  ``"c":1``. A success's entry is then ~55 bytes.

Records written by earlier versions (``outcome``, long attempt entries) read as they always did.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.policy.redact import mask_number
from schemas.wire.job import CallbackJob

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

OUTCOME_FIELDS = {"attempts": "oa", "finished_at": "of", "call_id": "oc", "error": "oe", "duplicate_of": "od"}
"""Record field of each outcome member the record does not otherwise say."""

_ECHOED = ("portal", "from_line", "idempotency_key", "metadata")
"""Outcome members that echo the job, always present (contract §5)."""

_ECHOED_OPTIONAL = ("intake_id", "replay_of")
"""Outcome members that echo the job, present only when the job has them."""

ATTEMPT_NAMES = {
    "started_at": "s",
    "ended_at": "e",
    "duration_ms": "d",
    "http_status": "h",
    "call_id": "c",
    "redial": "r",
    "counts": "n",
    "code": "x",
    "description": "y",
}
"""Short name of each attempt entry member callq writes (others keep their name)."""

_ATTEMPT_LONG = {short: name for name, short in ATTEMPT_NAMES.items()}
_TIMES = frozenset({"started_at", "ended_at"})
ENDED_AFTER = "ed"
"""An attempt entry's ``ended_at`` as µs after its ``started_at`` (both in µs): 11 bytes less."""

OUTCOME_CALL_ID = 1
"""An attempt entry's ``c`` when its CALL_ID is its outcome's (stored once, as ``oc``)."""


def pack_instant(text: str) -> str | int:
    """An aware time's text as unix µs if :func:`unpack_instant` gives it back exactly
    (``datetime.isoformat()`` in UTC, callq's own), else the text."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        return text
    us = (moment - _EPOCH) // timedelta(microseconds=1)
    return us if unpack_instant(us) == text else text


def unpack_instant(value: str | int) -> str:
    """The text :func:`pack_instant` packed."""
    if isinstance(value, str):
        return value
    return (_EPOCH + timedelta(microseconds=value)).isoformat()


def _instant_us(text: Any) -> int:
    packed = pack_instant(text) if isinstance(text, str) else text
    if not isinstance(packed, int):
        raise TypeError(f"attempt entry: {ENDED_AFTER!r} after a start that is not in µs: {text!r}")
    return packed


def outcome_fields(outcome_json: str, job: CallbackJob | None) -> list[str] | None:
    """The record fields (name, value, …) of a final outcome, or None when it must be stored whole
    (no job to echo from, or a member :func:`read_outcome` would not give back exactly)."""
    if job is None:
        return None
    outcome = json.loads(outcome_json)
    pairs: list[str] = []
    for name, field in OUTCOME_FIELDS.items():
        if name not in outcome or (outcome[name] is None and name in ("call_id", "error")):
            continue
        value = outcome[name]
        if name == "finished_at" and isinstance(value, str):
            packed = pack_instant(value)
            pairs += [field, str(packed) if isinstance(packed, int) else json.dumps(value)]
        elif name == "error":
            pairs += [field, json.dumps(value, separators=(",", ":"), ensure_ascii=False)]
        else:
            pairs += [field, json.dumps(value, ensure_ascii=False)]
    data = dict(zip(pairs[0::2], pairs[1::2], strict=True))
    rebuilt = read_outcome(data, job, outcome.get("status", ""))
    if json.dumps(rebuilt, separators=(",", ":"), ensure_ascii=False) != outcome_json:
        return None
    return pairs


def has_outcome(data: dict[str, str]) -> bool:
    """Whether a decoded record hash holds an outcome, whole or compact."""
    return "outcome" in data or OUTCOME_FIELDS["finished_at"] in data


def read_outcome(data: dict[str, str], job: CallbackJob, status: str) -> dict[str, Any]:
    """The outcome of a record stored by :func:`outcome_fields`: the same members, in the same order
    as :meth:`schemas.wire.outcome.Outcome.to_dict` writes them."""
    stored = {name: json.loads(data[field]) for name, field in OUTCOME_FIELDS.items() if field in data}
    outcome: dict[str, Any] = {"job_id": job.job_id, "status": status}
    outcome.update({name: getattr(job, name) for name in _ECHOED})
    outcome["attempts"] = stored.get("attempts", 0)
    outcome["finished_at"] = unpack_instant(stored["finished_at"]) if "finished_at" in stored else None
    outcome["call_id"] = stored.get("call_id")
    outcome["error"] = stored.get("error")
    if "duplicate_of" in stored:
        outcome["duplicate_of"] = stored["duplicate_of"]
    for name in _ECHOED_OPTIONAL:
        if getattr(job, name) is not None:
            outcome[name] = getattr(job, name)
    return outcome


def pack_attempt(entry: dict[str, Any], *, call_id: str | None = None) -> str:
    """An attempt entry as stored: short names, times in µs, ``call_id`` (the outcome's) as 1."""
    packed: dict[str, Any] = {}
    for name, value in entry.items():
        short = ATTEMPT_NAMES.get(name, name)
        if name in _TIMES and isinstance(value, str):
            value = pack_instant(value)
            start = packed.get(ATTEMPT_NAMES["started_at"])
            if name == "ended_at" and isinstance(value, int) and isinstance(start, int):
                short, value = ENDED_AFTER, value - start
        elif name == "call_id" and call_id is not None and value == call_id:
            value = OUTCOME_CALL_ID
        packed[short] = value
    return json.dumps(packed, separators=(",", ":"), ensure_ascii=False)


def unpack_attempt(raw: str, *, call_id: str | None = None) -> dict[str, Any]:
    """An attempt entry as written, whether :func:`pack_attempt` stored it or an earlier version did."""
    entry: dict[str, Any] = {}
    for short, value in json.loads(raw).items():
        name = _ATTEMPT_LONG.get(short, short)
        if short == ENDED_AFTER:
            name, value = "ended_at", unpack_instant(_instant_us(entry.get("started_at")) + value)
        elif name in _TIMES and isinstance(value, int):
            value = unpack_instant(value)
        elif name == "call_id" and value == OUTCOME_CALL_ID:
            value = call_id
        entry[name] = value
    return entry


CALL_RESULT_FIELD = "cr"
"""Record field of a final call result stored compact (:func:`call_result_rest`)."""

_CALL_ECHOED = ("kind", "job_id", "portal", "from_line", "to_number", "idempotency_key", "metadata")
"""A final call result's first members, which echo the job (:func:`schemas.store.calls.call_result_entry`)."""

_PLACED_AT = "placed_at"


def call_result_rest(final: dict[str, Any], job: CallbackJob, last_call: dict[str, Any]) -> str | None:
    """What of a final call result its record does not say already, as JSON, or None when it must
    be stored whole (:func:`read_call_result` would not give it back exactly).

    The record says the members that echo the job, and those of the last call's end (its
    ``call:N`` entry, the same step writes it): ~550 bytes become ~120.

    Args:
        final: the final call result as published.
        job: the record's job.
        last_call: the last call's entry (``call:N``, N the followed call's attempt) as the record
            will hold it.
    """
    echoed = dict(zip(_CALL_ECHOED, _call_echo(final.get("kind"), job), strict=True))
    rest = {
        name: value
        for name, value in final.items()
        if name not in echoed and not (name in last_call and last_call[name] == value)
    }
    packed = json.dumps(rest, separators=(",", ":"), ensure_ascii=False)
    rebuilt = read_call_result(packed, job, last_call)
    if json.dumps(rebuilt, separators=(",", ":")) != json.dumps(final, separators=(",", ":")):
        return None
    return packed


def read_call_result(rest_json: str, job: CallbackJob, last_call: dict[str, Any]) -> dict[str, Any]:
    """The final call result :func:`call_result_rest` stored: the job's echo, the last call's end
    (but for when it was placed), the rest, then when the call was placed."""
    rest = json.loads(rest_json)
    final: dict[str, Any] = dict(zip(_CALL_ECHOED, _call_echo("call_result", job), strict=True))
    final.update({name: value for name, value in last_call.items() if name != _PLACED_AT})
    final.update({name: value for name, value in rest.items() if name != _PLACED_AT})
    if _PLACED_AT in rest:
        final[_PLACED_AT] = rest[_PLACED_AT]
    elif _PLACED_AT in last_call:
        final[_PLACED_AT] = last_call[_PLACED_AT]
    return final


def _call_echo(kind: Any, job: CallbackJob) -> tuple[Any, ...]:
    number = mask_number(job.to_number) if job.to_number else None
    return (kind, job.job_id, job.portal, job.from_line, number, job.idempotency_key, job.metadata)
