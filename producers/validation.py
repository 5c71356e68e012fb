"""Turn producer input into a normalised job, or a list of precise field errors. Pure.

The same path serves every way in (Python API, CLI, stream, HTTP), so a job means the same
thing whichever way it came.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import phonenumbers
from pydantic import ValidationError

from producers.strict_json import JsonProblem, check_storable, decode_strict
from schemas.config import PortalConfig, Settings, UnknownPortalError
from schemas.policy.calendar import Expired, default_deadline, earliest_run
from schemas.policy.redact import redact_text
from schemas.wire.job import JOB_FIELDS, MAX_HORIZON, CallbackJob, CallbackJobIn, format_utc, parse_rfc3339


@dataclass(frozen=True)
class FieldError:
    """One problem with the input: the field (dotted path, empty for the whole entry) and why.

    The field and message may quote the input (an unknown field's name, a portal's name): what
    leaves this object (:meth:`to_dict`, :attr:`Invalid.description`) has numbers and secrets masked.
    """

    field: str
    message: str

    def to_dict(self) -> dict[str, str]:
        """JSON-ready form, masked."""
        return {"field": redact_text(self.field), "message": redact_text(self.message)}


@dataclass(frozen=True)
class Invalid:
    """Input that cannot become a job. ``echo`` keeps what could be read, for the outcome."""

    errors: tuple[FieldError, ...]
    echo: dict[str, Any]

    @property
    def description(self) -> str:
        """All errors on one line, masked."""
        return redact_text("; ".join(f"{e.field or 'job'}: {e.message}" for e in self.errors))


@dataclass(frozen=True)
class Valid:
    """A job ready to store: when it may first run, or why it never can."""

    job: CallbackJob
    run_at: datetime | None  # None when expired
    expired_reason: str | None = None
    deadline_sent: bool = True  # False: the deadline was computed from the arrival time
    voice_sent: bool = False  # True: the job named its own voice (not its line's default)


MAX_ENTRY_BYTES = 64 * 1024
"""A job is a few hundred bytes (4 KiB of metadata at most); anything far larger is refused unread."""


def decode_entry(raw: str | bytes | dict[str, Any]) -> dict[str, Any] | Invalid:
    """Decode JSON text into an object (strictly, :mod:`producers.strict_json`), or say why not."""
    try:
        if isinstance(raw, dict):
            check_storable(raw)
            return raw
        size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
        if size > MAX_ENTRY_BYTES:
            return _invalid("", f"is {size} bytes; a job is at most {MAX_ENTRY_BYTES} bytes")
        return decode_strict(raw)
    except JsonProblem as problem:
        return _invalid(problem.field, problem.message)


def validate_job(
    raw: str | bytes | dict[str, Any],
    *,
    settings: Settings,
    now: datetime,
    job_id: str,
    intake_id: str | None = None,
) -> Valid | Invalid:
    """Validate and normalise one job.

    Args:
        raw: JSON text or an already decoded object.
        settings: the configuration (portals, regions, line defaults, calendars).
        now: the current time.
        job_id: the id the job gets.
        intake_id: the intake stream entry it came from, echoed in its outcome.

    Returns:
        ``Valid`` (possibly already expired) or ``Invalid`` with every problem found.
    """
    data = decode_entry(raw)
    if isinstance(data, Invalid):
        return data
    echo = _echo(data)
    try:
        wire = CallbackJobIn.model_validate(data)
    except ValidationError as exc:
        return Invalid(errors=tuple(_pydantic_errors(exc)), echo=echo)
    try:
        portal = settings.portal(wire.portal)
    except UnknownPortalError as exc:
        return Invalid(errors=(FieldError("portal", str(exc)),), echo=echo)
    errors: list[FieldError] = []
    number = _e164(wire.to_number, portal, errors)
    line = portal.line(wire.from_line)
    text = wire.text_to_pronounce or line.text_to_pronounce
    if not text:
        errors.append(
            FieldError("text_to_pronounce", f"required: line {wire.from_line!r} has no default text")
        )
    not_before = parse_rfc3339(wire.not_before) if wire.not_before else None
    deadline = parse_rfc3339(wire.deadline) if wire.deadline else None
    if not_before and deadline and deadline <= not_before:
        errors.append(FieldError("deadline", "must be later than not_before"))
    errors += beyond_horizon(not_before=not_before, deadline=deadline, now=now)
    if errors or number is None or not text:
        return Invalid(errors=tuple(errors), echo={**echo, "portal": portal.name})
    try:
        return _schedule(
            wire, portal, number, text, not_before, deadline, now=now, job_id=job_id, intake_id=intake_id
        )
    except OverflowError:
        # a date near year 1 or 9999 overflows the calendar arithmetic: bad input, rejected
        fields = [name for name in ("not_before", "deadline") if getattr(wire, name) is not None] or [""]
        problems = tuple(
            FieldError(name, "is out of the range of dates callq can compute with") for name in fields
        )
        return Invalid(errors=problems, echo={**echo, "portal": portal.name})


def _schedule(
    wire: CallbackJobIn,
    portal: PortalConfig,
    number: str,
    text: str,
    not_before: datetime | None,
    deadline: datetime | None,
    *,
    now: datetime,
    job_id: str,
    intake_id: str | None,
) -> Valid:
    line = portal.line(wire.from_line)
    calendar = portal.calendar_for(wire.from_line)
    deadline_sent = deadline is not None
    if deadline is None:
        deadline = default_deadline(
            calendar, now=now, not_before=not_before, default_deadline_s=portal.default_deadline_s
        )
    job = CallbackJob(
        job_id=job_id,
        portal=portal.name,
        from_line=wire.from_line,
        to_number=number,
        text_to_pronounce=text,
        voice=wire.voice or line.voice,
        not_before=_utc(not_before, round_up=True),
        deadline=_utc(deadline),
        idempotency_key=wire.idempotency_key,
        metadata=wire.metadata,
        created_at=format_utc(now, timespec="seconds"),
        intake_id=intake_id,
    )
    decision = earliest_run(calendar, now=now, not_before=not_before, deadline=deadline)
    voice_sent = wire.voice is not None
    if isinstance(decision, Expired):
        reason = decision.reason
        return Valid(job, None, reason, deadline_sent=deadline_sent, voice_sent=voice_sent)
    return Valid(job=job, run_at=decision.at, deadline_sent=deadline_sent, voice_sent=voice_sent)


def unknown_voice(valid: Valid, offered: frozenset[str] | None) -> Invalid | None:
    """A job whose own ``voice`` the portal does not offer, as invalid input; None if it is offered,
    the job named none (its line's default is the configuration's, checked by ``callq check``), or
    the portal's list is not known (an unknown list never refuses).

    Args:
        valid: the validated job.
        offered: the voice ids its portal offers (:mod:`schemas.store.voices`), or None.
    """
    job = valid.job
    if not valid.voice_sent or offered is None or job.voice is None or job.voice in offered:
        return None
    message = f"{job.voice!r} is not offered by portal {job.portal} (`callq voices {job.portal}` lists them)"
    echo = {"portal": job.portal, "from_line": redact_text(job.from_line), "metadata": job.metadata}
    if job.idempotency_key is not None:
        echo["idempotency_key"] = job.idempotency_key
    return Invalid(
        errors=(FieldError("voice", message),), echo={k: v for k, v in echo.items() if v is not None}
    )


def beyond_horizon(
    *, not_before: datetime | None, deadline: datetime | None, now: datetime
) -> list[FieldError]:
    """Errors for a ``not_before`` or ``deadline`` beyond :data:`schemas.wire.job.MAX_HORIZON` from now.

    A job waits, and holds its line + number, until its deadline: a year-3000 date would hold it for
    centuries, and is far more likely a mistake than a plan.
    """
    limit = now + MAX_HORIZON
    return [
        FieldError(
            name, f"is more than {MAX_HORIZON.days} days ahead; callq holds a callback at most that long"
        )
        for name, moment in (("not_before", not_before), ("deadline", deadline))
        if moment is not None and moment > limit
    ]


def _e164(raw: str, portal: PortalConfig, errors: list[FieldError]) -> str | None:
    region = portal.default_region
    try:
        parsed = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        hint = "" if region else " (no default_region is configured: write it with +country code)"
        errors.append(FieldError("to_number", f"cannot be parsed: {exc._msg}{hint}"))
        return None
    if not phonenumbers.is_valid_number(parsed):
        errors.append(
            FieldError("to_number", f"is not a valid phone number (region {region or 'from +code'})")
        )
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _pydantic_errors(exc: ValidationError) -> list[FieldError]:
    out = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(part) for part in err["loc"])
        if err["type"] == "extra_forbidden":
            message = f"unknown field (allowed: {', '.join(JOB_FIELDS)})"
        elif err["type"] == "missing":
            message = "required"
        elif err["type"] == "string_pattern_mismatch" and where in ("not_before", "deadline"):
            message = "must be an RFC 3339 date-time with an offset, e.g. 2026-11-21T10:00:00+03:00"
        elif err["type"] == "string_pattern_mismatch" and where == "to_number":
            message = "must be a phone number: digits, spaces, +, -, ( ) and dots, 3 to 40 characters"
        else:
            message = err["msg"]
        out.append(FieldError(where, message))
    return out


def _echo(data: dict[str, Any]) -> dict[str, Any]:
    """What a rejection echoes back: the fields that help a producer match it, if well-typed."""
    echo: dict[str, Any] = {}
    for name in ("portal", "from_line", "idempotency_key"):
        value = data.get(name)
        if isinstance(value, str) and len(value) <= 200:
            # a key is the producer's own handle on the job: echoed as sent, like the metadata
            echo[name] = value if name == "idempotency_key" else redact_text(value)
    metadata = data.get("metadata")
    if isinstance(metadata, dict) and len(json.dumps(metadata, default=str)) <= 4096:
        echo["metadata"] = metadata
    return echo


def _invalid(field: str, message: str) -> Invalid:
    return Invalid(errors=(FieldError(field, message),), echo={})


def _utc(moment: datetime | None, *, round_up: bool = False) -> str | None:
    """The stored form of ``not_before`` / ``deadline``: to the millisecond, rounded so that a job never
    runs earlier than asked (``round_up`` for ``not_before``) or later (down, for ``deadline``). Fewer
    characters in every record (a computed deadline carried microseconds: 3 bytes more each)."""
    if moment is None:
        return None
    ms = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    if round_up and ms < moment:
        ms += timedelta(milliseconds=1)
    return format_utc(ms, timespec="milliseconds" if ms.microsecond else "seconds")
