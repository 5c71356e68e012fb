"""The callback job: its wire format (contract §3) and the normalised form stored in Redis.

``CallbackJobIn`` is what producers send; it enforces the same rules as
``callback_job.schema.json`` (a test keeps the two in agreement). ``CallbackJob`` is the job
after it was resolved against the configuration (portal chosen, number in E.164, line defaults
applied, deadline computed); it is what the worker reads back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
"""RFC 3339 date-time *with* an offset: a naive time is ambiguous across the portal's zone."""

PHONE_PATTERN = r"^[\t\n\r ]*\+?[0-9()\-. ]{3,40}[\t\n\r ]*$"
"""Loose shape check shared with the JSON Schema; phonenumbers does the real parsing. Whitespace
around the number (a copy-paste, a form field) is allowed, and stripped before it is parsed."""

PHONE_SURROUNDING = " \t\r\n"

PORTAL_PATTERN = r"^[a-z0-9_-]+$"
METADATA_MAX_BYTES = 4096
MAX_HORIZON = timedelta(days=366)
"""``not_before`` and ``deadline`` may be at most this far ahead of the job's arrival."""
TEXT_MAX_CHARS = 2000

JOB_FIELDS = (
    "from_line",
    "to_number",
    "text_to_pronounce",
    "voice",
    "portal",
    "not_before",
    "deadline",
    "idempotency_key",
    "metadata",
)

Rfc3339 = Annotated[str, StringConstraints(pattern=RFC3339_PATTERN)]

RECORD_FIELDS = {
    "portal": "p",
    "from_line": "l",
    "to_number": "n",
    "text_to_pronounce": "t",
    "created_at": "c",
    "voice": "v",
    "not_before": "nb",
    "deadline": "dl",
    "idempotency_key": "k",
    "metadata": "m",
    "replay_of": "r",
    "intake_id": "i",
}
"""A job's fields in its record hash (:meth:`CallbackJob.to_fields`): short names, since every job has
a record (``metadata`` as JSON). The record's own fields (``state``, ``run_at``, ``attempts``,
``attempt:N``, ``outcome``…) are all longer."""

RECORD_TIMES = frozenset({"created_at", "not_before", "deadline"})
"""The job's times, stored in its record as unix milliseconds (:func:`pack_time`) where that gives back
the same text: an integer of 13 digits takes 9 bytes in a listpack, the text 20 to 24."""

LEGACY_INTAKE_JOB_ID = re.compile(r"s(\d+-\d+)")
"""Up to 0.2 an intake entry's job id was ``s`` + its entry id: guessable (a millisecond timestamp).
Records written then are still read (their ``intake_id`` is derived from the id, not stored)."""

INTAKE_ID_BYTES = 10
"""Bytes of the HMAC in an intake job id: 80 bits, as many as a random API job id has."""


def intake_job_id(entry_id: str, key: bytes) -> str:
    """The job id of an intake entry: ``s`` + an HMAC of the entry id, 16 characters of base32.

    Stable across redeliveries of the entry (the same entry is the same job), unguessable without
    ``key`` (derived from the deployment's secret, :mod:`schemas.store.secret`). Never of the legacy form
    (no ``-``), and shorter than it: every job id is stored six times (issue 7's memory target).
    """
    digest = hmac.new(key, entry_id.encode(), hashlib.sha256).digest()[:INTAKE_ID_BYTES]
    return "s" + base64.b32encode(digest).decode().lower()


def legacy_intake_job_id(entry_id: str) -> str:
    """The job id an intake entry got up to 0.2 (``s`` + entry id), to find a job admitted then."""
    return "s" + entry_id


def format_utc(moment: datetime, *, timespec: str = "auto") -> str:
    """RFC 3339 in UTC, written short: ``2026-11-21T07:00:00Z`` (fractions only when there are some)."""
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def pack_time(value: str) -> str:
    """A job time as stored in its record: unix milliseconds if :func:`unpack_time` gives ``value``
    back exactly (the UTC forms callq writes, ``…:00Z`` or ``…:00.250Z``), else ``value`` itself."""
    try:
        moment = parse_rfc3339(value)
    except ValueError:
        return value
    packed = str((moment - _EPOCH) // timedelta(milliseconds=1))
    return packed if unpack_time(packed) == value else value


def unpack_time(stored: str) -> str:
    """The job time :func:`pack_time` stored (digits: unix ms; anything else is the text itself,
    as records written by earlier versions hold it)."""
    if not stored.isdigit():
        return stored
    ms = int(stored)
    moment = _EPOCH + timedelta(milliseconds=ms)
    return format_utc(moment, timespec="milliseconds" if ms % 1000 else "seconds")


def parse_rfc3339(value: str) -> datetime:
    """Parse an RFC 3339 timestamp that carries an offset.

    Args:
        value: e.g. ``2026-11-21T10:00:00+03:00`` or ``2026-11-21T07:00:00Z``.

    Returns:
        An aware datetime.

    Raises:
        ValueError: the text is not RFC 3339 or has no offset.
    """
    moment = datetime.fromisoformat(value.replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError("needs an offset such as +03:00 or Z")
    return moment


class CallbackJobIn(BaseModel):
    """A callback job as a producer sends it (contract §3). Unknown fields are an error."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    from_line: Annotated[str, StringConstraints(min_length=1, max_length=100)]
    to_number: Annotated[str, StringConstraints(pattern=PHONE_PATTERN)]
    text_to_pronounce: Annotated[str, StringConstraints(min_length=1, max_length=TEXT_MAX_CHARS)] | None = (
        None
    )
    voice: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None
    portal: Annotated[str, StringConstraints(pattern=PORTAL_PATTERN, max_length=100)] | None = None
    not_before: Rfc3339 | None = None
    deadline: Rfc3339 | None = None
    idempotency_key: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None
    metadata: dict[str, Any] | None = Field(default=None)

    @field_validator("to_number")
    @classmethod
    def _strip_number(cls, value: str) -> str:
        return value.strip(PHONE_SURROUNDING)

    @field_validator("not_before", "deadline")
    @classmethod
    def _real_date(cls, value: str | None) -> str | None:
        # The pattern admits 2026-02-30; the calendar does not.
        if value is not None:
            parse_rfc3339(value)
        return value

    @field_validator("metadata")
    @classmethod
    def _small_metadata(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        # Python-only rule (JSON Schema cannot measure encoded size): metadata is echoed in every
        # outcome, so it is kept small.
        if value is not None:
            size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
            if size > METADATA_MAX_BYTES:
                raise ValueError(f"is {size} bytes as JSON, at most {METADATA_MAX_BYTES} allowed")
        return value


@dataclass(frozen=True)
class CallbackJob:
    """A job resolved against the configuration; stored as JSON in the job record.

    Times are RFC 3339 strings in UTC so that any language can read the record.
    """

    job_id: str
    portal: str
    from_line: str
    to_number: str  # E.164
    text_to_pronounce: str
    created_at: str
    voice: str | None = None
    not_before: str | None = None
    deadline: str | None = None
    idempotency_key: str | None = None
    metadata: dict[str, Any] | None = None
    replay_of: str | None = None
    intake_id: str | None = None

    def to_json(self) -> str:
        """Encode for the job record ``{p}:job:{job_id}``.

        A record per job adds up (issue 7's memory target), so what the record's key already says is
        left out: the job id, and the intake entry id when the job id is the legacy one derived from
        it; so are absent optional fields.
        """
        # fields(), not asdict(): no deep copy of metadata just to encode it (the worker's hot path)
        data = {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}
        del data["job_id"]
        if self.intake_id is not None and self.job_id == legacy_intake_job_id(self.intake_id):
            del data["intake_id"]
        return json.dumps(data, separators=(",", ":"), ensure_ascii=False)

    def to_fields(self) -> list[str]:
        """Encode for the job record as hash fields (name, value, name, value…), one per field set.

        Short names (:data:`RECORD_FIELDS`) and one field each, rather than one JSON value, so that a
        typical job's record keeps every value within Redis's default ``hash-max-listpack-value``
        (64 bytes) and stays in its compact encoding (issue 16's memory target, with Redis's
        defaults). What :meth:`to_json` leaves out is left out here too.
        """
        pairs: list[str] = []
        for name, short in RECORD_FIELDS.items():
            value = getattr(self, name)
            if value is None or (name == "intake_id" and self.job_id == legacy_intake_job_id(value)):
                continue
            if name == "metadata":
                value = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
            elif name in RECORD_TIMES:
                value = pack_time(value)
            pairs += [short, value]
        return pairs

    @classmethod
    def from_fields(cls, data: dict[str, str], job_id: str) -> CallbackJob:
        """Decode a job record written by :meth:`to_fields` (its other fields are ignored)."""
        values: dict[str, Any] = {name: data[short] for name, short in RECORD_FIELDS.items() if short in data}
        if "metadata" in values:
            values["metadata"] = json.loads(values["metadata"])
        for name in RECORD_TIMES.intersection(values):
            values[name] = unpack_time(values[name])
        values["job_id"] = job_id
        derived = LEGACY_INTAKE_JOB_ID.fullmatch(job_id)
        if derived and "intake_id" not in values:
            values["intake_id"] = derived.group(1)
        return cls(**values)

    @classmethod
    def from_json(cls, raw: str | bytes, job_id: str) -> CallbackJob:
        """Decode a job record's ``job`` field; ``job_id`` is the record's."""
        data = json.loads(raw)
        data["job_id"] = job_id
        derived = LEGACY_INTAKE_JOB_ID.fullmatch(job_id)
        if derived and "intake_id" not in data:
            data["intake_id"] = derived.group(1)
        return cls(**data)

    @property
    def deadline_at(self) -> datetime | None:
        """The deadline as a datetime."""
        return parse_rfc3339(self.deadline) if self.deadline else None

    @property
    def not_before_at(self) -> datetime | None:
        """``not_before`` as a datetime."""
        return parse_rfc3339(self.not_before) if self.not_before else None
