"""Bulk import of callbacks from a CSV or JSONL file: ``callq enqueue --file`` and the dashboard's import.

One module for both, so a file is read, checked and queued the same way wherever it comes from:

1. :func:`read_rows` (pure) turns the file into rows: CSV with a header naming the job's fields
   (contract §3; an empty cell is an absent field, ``metadata`` a JSON object), or JSONL (one job
   object per line). A column that is no field of a job fails the whole file, naming it: a typo must
   not silently drop a field.
2. :func:`preview` validates every row exactly as every other way in does
   (:func:`producers.validation.validate_job`) and stores nothing: which rows would be queued, which
   are already queued by an earlier import, and which are rejected, with the reasons.
3. :func:`import_rows` queues the valid rows through the one admission path
   (:meth:`producers.api.Producer.submit_many`, in batches) and counts what became of them.

**Idempotent.** A row without an ``idempotency_key`` gets one derived from its content
(:func:`row_key`: ``import-`` and a digest of the row's fields), so importing the same file twice
queues nothing twice: the second import finds every key known and makes no new job (while the first
jobs' records are kept, ``outcome_retention``). Rejected rows are reported, never queued or
recorded: the person importing fixes the file and imports it again.
"""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import hashlib
import io
import json
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal

from producers.api import Producer, Submitted
from producers.validation import Invalid, validate_job
from schemas.config import Settings
from schemas.policy.redact import mask_number, redact_text
from schemas.states import Status
from schemas.wire.job import JOB_FIELDS as WIRE_JOB_FIELDS

JOB_FIELDS = frozenset(WIRE_JOB_FIELDS)
"""The fields of a callback job (contract §3): the only CSV columns accepted."""

MAX_ROWS = 100_000
"""More rows than this in one file is refused whole: split the campaign."""

MAX_FILE_BYTES = 32 * 1024 * 1024
"""A row is a few hundred bytes; 32 MiB holds 100,000 of them with room to spare."""

DASHBOARD_MAX_ROWS = 20_000
"""Rows one dashboard upload may hold: a request's preview and import run in ``callq serve`` beside
every other request (a larger campaign goes through ``callq enqueue --file``)."""

DASHBOARD_MAX_BYTES = 8 * 1024 * 1024
"""Bytes one dashboard upload may have (20,000 rows of a few hundred bytes, with room to spare)."""

BATCH = 200
"""Rows admitted per round trip (the intake stream reads in batches of the same order)."""

YIELD_EVERY = 200
"""Rows validated between two yields to the event loop: a preview of a large file runs in the same
process as the API and ``/healthz``, which must go on answering (a row takes ~0.4 ms to validate, so
a request waits at most ~0.1 s behind an import)."""

KEY_PREFIX = "import-"


class FileProblem(ValueError):
    """The file as a whole cannot be imported (unknown format, unknown column, too large)."""


class FileTooLarge(FileProblem):
    """The file has more bytes or rows than are imported at once."""


class RowVerdict(StrEnum):
    """What a row would become (preview) or became (import)."""

    QUEUED = "queued"  # a new job: scheduled
    REPEAT = "already_queued"  # its idempotency key is known: the earlier job, nothing new
    DUPLICATE = "duplicate"  # line + number held by another pending job: recorded duplicate, no call
    EXPIRED = "expired"  # its deadline cannot be met: recorded expired, no call
    REJECTED = "rejected"  # invalid: not queued


@dataclass(frozen=True)
class Row:
    """One row of the file: its line (1-based, the header is line 1 of a CSV) and its fields, or why
    it could not even be read."""

    line: int
    fields: dict[str, Any] | None
    problem: str | None = None


@dataclass(frozen=True)
class RowResult:
    """What became of one row. ``number`` is masked; ``reason`` masked too."""

    line: int
    verdict: RowVerdict
    number: str | None = None
    reason: str | None = None
    job_id: str | None = None


@dataclass
class Summary:
    """Counts per verdict, and the rows that were not queued (with their reasons)."""

    total: int = 0
    counts: dict[RowVerdict, int] = field(default_factory=lambda: dict.fromkeys(RowVerdict, 0))
    rows: list[RowResult] = field(default_factory=list)

    def add(self, result: RowResult) -> None:
        """Count ``result``; keep it if it was not simply queued."""
        self.total += 1
        self.counts[result.verdict] += 1
        if result.verdict is not RowVerdict.QUEUED:
            self.rows.append(result)

    @property
    def rejected(self) -> list[RowResult]:
        """The rejected rows, in file order."""
        return [row for row in self.rows if row.verdict is RowVerdict.REJECTED]

    def to_dict(self) -> dict[str, Any]:
        """As JSON (``--json``, the dashboard)."""
        return {
            "total": self.total,
            **{str(verdict): count for verdict, count in self.counts.items()},
            "rows": [
                {k: v for k, v in vars(row).items() if v is not None} | {"verdict": str(row.verdict)}
                for row in self.rows
            ],
        }


def read_rows(
    data: bytes, *, filename: str = "", max_rows: int = MAX_ROWS, max_bytes: int = MAX_FILE_BYTES
) -> list[Row]:
    """The rows of a CSV or JSONL file (pure).

    Args:
        data: the file's bytes (UTF-8; a BOM is allowed).
        filename: its name: ``.csv`` or ``.jsonl``/``.ndjson`` chooses the format; otherwise a file
            whose first character is ``{`` is JSONL, anything else CSV.
        max_rows: more rows than this fail the file (the dashboard's is :data:`DASHBOARD_MAX_ROWS`).
        max_bytes: a larger file fails (the dashboard's is :data:`DASHBOARD_MAX_BYTES`).

    Raises:
        FileProblem: too large, not UTF-8, an unknown CSV column, more than ``max_rows`` rows.
    """
    if len(data) > max_bytes:
        raise FileTooLarge(f"the file is {len(data)} bytes; at most {max_bytes} are imported at once")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileProblem(f"the file is not UTF-8 text (byte {exc.start})") from None
    jsonl = file_format(text, filename) == "jsonl"
    try:
        rows = list(_jsonl_rows(text) if jsonl else _csv_rows(text))
    except csv.Error as exc:  # a cell over the csv module's field limit, a NUL byte: quotes nothing
        raise FileProblem(f"the file cannot be read as CSV: {exc}") from None
    if len(rows) > max_rows:
        raise FileTooLarge(f"the file has {len(rows)} rows; at most {max_rows} are imported at once")
    return rows


def file_format(text: str, filename: str) -> Literal["csv", "jsonl"]:
    """The format of a file (pure): ``.csv`` or ``.jsonl``/``.ndjson`` by its name; otherwise JSONL if
    its first character is ``{``, else CSV. A name that chose it must be kept with the file (the
    dashboard's preview keeps it for the confirmation)."""
    name = filename.lower()
    if name.endswith((".jsonl", ".ndjson")):
        return "jsonl"
    if name.endswith(".csv"):
        return "csv"
    return "jsonl" if text.lstrip().startswith("{") else "csv"


def _jsonl_rows(text: str) -> Iterator[Row]:
    for index, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield Row(index, None, f"not JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(value, dict):
            yield Row(index, None, "not a JSON object")
            continue
        yield Row(index, value)


def _csv_rows(text: str) -> Iterator[Row]:
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return
    columns = [column.strip() for column in header]
    unknown = [column for column in columns if column not in JOB_FIELDS]
    if unknown:
        raise FileProblem(
            f"unknown column(s) {', '.join(map(repr, unknown))}; the columns are the job's fields: "
            + ", ".join(sorted(JOB_FIELDS))
        )
    if len(set(columns)) != len(columns):
        raise FileProblem("a column is named twice")
    for cells in reader:
        line = reader.line_num
        if not any(cell.strip() for cell in cells):
            continue
        if len(cells) != len(columns):
            yield Row(line, None, f"has {len(cells)} cells; the header names {len(columns)}")
            continue
        fields: dict[str, Any] = {}
        problem = None
        for column, cell in zip(columns, cells, strict=True):
            if not cell.strip():
                continue
            if column == "metadata":
                try:
                    fields[column] = json.loads(cell)
                except json.JSONDecodeError:
                    problem = "metadata: not a JSON object"
            else:
                fields[column] = cell.strip()
        yield Row(line, None if problem else fields, problem)


def row_key(fields: dict[str, Any]) -> str:
    """The idempotency key of a row that has none: ``import-`` and a digest of its fields (pure).

    The same row in the same file, or in another file, is the same job; a row that differs in any
    field is another one.
    """
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return KEY_PREFIX + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:40]


def keyed(fields: dict[str, Any], *, default_portal: str | None = None) -> dict[str, Any]:
    """The row as submitted: ``portal`` defaulted, an ``idempotency_key`` derived when it has none."""
    out = dict(fields)
    if default_portal and "portal" not in out:
        out["portal"] = default_portal
    if not out.get("idempotency_key"):
        out["idempotency_key"] = row_key({k: v for k, v in out.items() if k != "idempotency_key"})
    return out


def _masked(fields: dict[str, Any] | None) -> str | None:
    number = (fields or {}).get("to_number")
    return mask_number(number) if isinstance(number, str) and number else None


@dataclass(frozen=True)
class Checked:
    """A row that passed validation, ready to submit."""

    line: int
    fields: dict[str, Any]
    portal: str
    key: str


async def preview(
    producer: Producer,
    rows: Sequence[Row],
    *,
    default_portal: str | None = None,
    scope: Collection[str] | None = None,
    now: datetime | None = None,
) -> tuple[Summary, list[Checked]]:
    """Validate every row and look up which are already queued; store nothing.

    Args:
        producer: the admission path (its settings validate; its ledger answers "known key?").
        rows: from :func:`read_rows`.
        default_portal: the portal of rows that name none.
        scope: the portals the importer may use (None: every one); a row on another is rejected.
        now: the time validation uses (the producer's clock by default).

    Returns:
        The summary as the import would be (``duplicate`` and ``expired`` are only known for sure
        once queued: a preview counts a row whose deadline has passed as expired), and the valid rows.
    """
    now = now or producer.clock()
    settings = _scoped(producer.settings, scope)
    summary = Summary()
    checked: list[Checked] = []
    for index, row in enumerate(rows):
        if index % YIELD_EVERY == YIELD_EVERY - 1:
            await asyncio.sleep(0)  # let the server's other requests run (validation is CPU only)
        if row.fields is None:
            summary.add(RowResult(row.line, RowVerdict.REJECTED, reason=row.problem))
            continue
        fields = keyed(row.fields, default_portal=default_portal)
        named = fields.get("portal")
        if scope is not None and isinstance(named, str) and named not in scope:
            reason = f"portal: {named!r} is not a portal this token may use"
            summary.add(RowResult(row.line, RowVerdict.REJECTED, _masked(fields), redact_text(reason)))
            continue
        result = validate_job(fields, settings=settings, now=now, job_id="preview")
        if isinstance(result, Invalid):
            summary.add(RowResult(row.line, RowVerdict.REJECTED, _masked(fields), result.description))
            continue
        if result.run_at is None:
            reason = redact_text(result.expired_reason or "its deadline cannot be met")
            summary.add(RowResult(row.line, RowVerdict.EXPIRED, _masked(fields), reason))
            continue
        checked.append(Checked(row.line, fields, result.job.portal, fields["idempotency_key"]))
    known = await _known_keys(producer, checked)
    for ok, holder in zip(checked, known, strict=True):
        if holder is None:
            summary.add(RowResult(ok.line, RowVerdict.QUEUED, _masked(ok.fields)))
        else:
            summary.add(RowResult(ok.line, RowVerdict.REPEAT, _masked(ok.fields), job_id=holder))
    summary.rows.sort(key=lambda r: r.line)
    return summary, checked


async def _known_keys(producer: Producer, rows: Sequence[Checked]) -> list[str | None]:
    """The job holding each row's idempotency key, or None (pipelined)."""
    found: list[str | None] = []
    keys = producer.keys
    for start in range(0, len(rows), 1000):
        async with producer.redis.pipeline(transaction=False) as pipe:
            for row in rows[start : start + 1000]:
                pipe.get(keys.idempotency(row.portal, row.key))
            replies = await pipe.execute()
        found += [r.decode() if isinstance(r, bytes) else r for r in replies]
    return found


def _scoped(settings: Settings, scope: Collection[str] | None) -> Settings:
    """The settings a scoped importer sees: only its portals (so a default portal is one of them)."""
    if scope is None:
        return settings
    portals = {name: p for name, p in settings.portals.items() if name in scope}
    return dataclasses.replace(settings, portals=MappingProxyType(portals))


Progress = Callable[[int, int], None]
"""Called with (rows done, rows to do) after each batch."""


async def import_rows(
    producer: Producer,
    rows: Sequence[Row],
    *,
    default_portal: str | None = None,
    scope: Collection[str] | None = None,
    progress: Progress | None = None,
) -> Summary:
    """Queue the valid rows of a file; rejected rows are counted with their reasons, not queued.

    Args:
        producer: the admission path.
        rows: from :func:`read_rows`.
        default_portal: the portal of rows that name none.
        scope: the portals the importer may use (None: every one).
        progress: told how far it got after each batch.

    Returns:
        What became of each row (a row's final verdict is the admission's: a row that another job
        took the line + number of meanwhile is ``duplicate``, recorded as such).
    """
    previewed, checked = await preview(producer, rows, default_portal=default_portal, scope=scope)
    summary = Summary()
    for result in previewed.rows:
        if result.verdict in (RowVerdict.REJECTED, RowVerdict.EXPIRED):
            summary.add(result)
    done = 0
    for start in range(0, len(checked), BATCH):
        batch = checked[start : start + BATCH]
        entries = [(json.dumps(row.fields), producer.id_factory(), None) for row in batch]
        submitted = await producer.submit_many(entries, settings=_scoped(producer.settings, scope))
        for row, (_raw, job_id, _intake), outcome in zip(batch, entries, submitted, strict=True):
            summary.add(_result(row, outcome, job_id=job_id))
        done += len(batch)
        if progress is not None:
            progress(done, len(checked))
    summary.rows.sort(key=lambda r: r.line)
    return summary


def _result(row: Checked, submitted: Submitted, *, job_id: str) -> RowResult:
    """A row's verdict: an answer about another job than the one made for it is a repeat (its key
    was known); otherwise the admission's status."""
    number = _masked(row.fields)
    reason = redact_text(submitted.error.description) if submitted.error else None
    if submitted.job_id != job_id:
        return RowResult(row.line, RowVerdict.REPEAT, number, job_id=submitted.job_id)
    if submitted.status == Status.DUPLICATE:
        why = f"the line and number are held by job {submitted.duplicate_of}"
        return RowResult(row.line, RowVerdict.DUPLICATE, number, why, submitted.job_id)
    if submitted.status == Status.EXPIRED:
        return RowResult(row.line, RowVerdict.EXPIRED, number, reason, submitted.job_id)
    if submitted.status == Status.REJECTED:
        return RowResult(row.line, RowVerdict.REJECTED, number, reason, submitted.job_id)
    return RowResult(row.line, RowVerdict.QUEUED, number, job_id=submitted.job_id)
