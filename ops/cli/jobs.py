"""Ops commands that put jobs in and read them back: ``enqueue``, ``status``, ``cancel``.

Each takes parsed arguments, the settings and a Redis client, prints for a person (or JSON with
``--json``) and returns the process exit code. The argument parser lives in :mod:`ops.cli.main`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Collection
from datetime import UTC, datetime
from typing import Any, TextIO, TypeVar

from redis.asyncio import Redis

from ops.cli import bulk
from ops.cli.logs import show_in_full
from ops.cli.numbers import int_in
from ops.cli.timeparse import parse_at, parse_duration
from ops.cli.verb import Verb, with_redis
from producers.api import AmbiguousKeyError, Producer, Submitted, not_cancellable
from producers.views import iso_utc, portal_halt, portal_move, record_view
from schemas.config import PortalConfig, Settings, UnknownPortalError
from schemas.policy.redact import mask_number, redact_value
from schemas.states import FINAL_STATUSES, CallState, Status
from schemas.store.records import JobRecord

T = TypeVar("T")


def add_enqueue_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``callq enqueue`` (contract §4)."""
    parser.add_argument("--line", help="FROM_LINE: the Bitrix24 line to ring first (required without --file)")
    parser.add_argument(
        "--to", help="the client's number; local spellings use the portal's region (required without --file)"
    )
    parser.add_argument("--text", help="TEXT_TO_PRONOUNCE (the line's default if omitted)")
    parser.add_argument("--voice", help="VOICE (the line's default if omitted)")
    parser.add_argument("--portal", help="portal name (optional with one portal)")
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--at", help="earliest time: 2026-11-22T10:00+03:00, '2026-11-22 10:00' or 10:00 (portal time)"
    )
    when.add_argument("--in", dest="in_", metavar="DURATION", help="earliest time from now: 90s, 15m, 2h, 1d")
    parser.add_argument("--deadline", help="latest useful time, same forms as --at")
    parser.add_argument("--key", help="idempotency key")
    parser.add_argument("--meta", help="metadata as a JSON object, echoed in the outcome")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--file",
        metavar="PATH",
        help="bulk import: a CSV (header: the job's fields) or JSONL file of callbacks; - reads stdin",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="with --file: check every row and print the summary; queue nothing",
    )


async def enqueue(
    args: argparse.Namespace, *, settings: Settings, redis: Redis, out: TextIO = sys.stdout
) -> int:
    """``callq enqueue``: submit one job and print its id and when it runs (``--file``: a whole file,
    :mod:`ops.cli.bulk`)."""
    if args.file:
        return await bulk.enqueue_file(args, settings=settings, redis=redis, out=out)
    if not args.line or not args.to:
        print("callq enqueue: --line and --to are required (or --file PATH)", file=sys.stderr)
        return 2
    producer = Producer(redis, settings=settings)
    try:
        portal = settings.portal(args.portal)
        fields = _job_fields(args, portal=portal, now=producer.clock())
    except (UnknownPortalError, BadOption) as exc:
        print(f"callq enqueue: {exc}", file=sys.stderr)
        return 2
    submitted = await producer.submit(fields)
    _print_submitted(submitted, settings=settings, portal_name=portal.name, as_json=args.json, out=out)
    return 1 if submitted.status == Status.REJECTED else 0


class BadOption(ValueError):
    """A ``callq enqueue`` option whose value cannot be used; the message names the option."""

    def __init__(self, option: str, problem: str) -> None:
        super().__init__(f"{option}: {problem}")
        self.option = option


def _job_fields(args: argparse.Namespace, *, portal: PortalConfig, now: datetime) -> dict[str, Any]:
    """The job's fields from the options, each option parsed on its own so an error names it.

    Raises:
        BadOption: ``--at``, ``--in``, ``--deadline`` or ``--meta`` cannot be read.
    """
    fields: dict[str, Any] = {"from_line": args.line, "to_number": args.to, "portal": portal.name}
    if args.text:
        fields["text_to_pronounce"] = args.text
    if args.voice:
        fields["voice"] = args.voice
    if args.at:
        not_before = _parsed("--at", lambda: parse_at(args.at, tz=portal.timezone, now=now))
        fields["not_before"] = not_before.isoformat()
    elif args.in_:
        fields["not_before"] = (now + _parsed("--in", lambda: parse_duration(args.in_))).isoformat()
    if args.deadline:
        deadline = _parsed("--deadline", lambda: parse_at(args.deadline, tz=portal.timezone, now=now))
        fields["deadline"] = deadline.isoformat()
    if args.key:
        fields["idempotency_key"] = args.key
    if args.meta:
        fields["metadata"] = _parsed("--meta", lambda: _json(args.meta))
    return fields


def _parsed(option: str, parse: Callable[[], T]) -> T:
    try:
        return parse()
    except ValueError as exc:  # TimeParseError, json.JSONDecodeError
        raise BadOption(option, str(exc)) from None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from None


def _print_submitted(
    submitted: Submitted, *, settings: Settings, portal_name: str, as_json: bool, out: TextIO
) -> None:
    tz = settings.portals[portal_name].timezone
    data: dict[str, Any] = {
        "job_id": submitted.job_id,
        "status": str(submitted.status),
        "new": submitted.new,
        "run_at": iso_utc(submitted.run_at),
        "run_at_local": iso_utc(submitted.run_at.astimezone(tz)) if submitted.run_at else None,
    }
    if submitted.duplicate_of:
        data["duplicate_of"] = submitted.duplicate_of
    if submitted.error:
        data["error"] = submitted.error.to_dict()
    if submitted.existing_job_id:
        data["existing_job_id"] = submitted.existing_job_id
    if as_json:
        print(json_output(data), file=out)
        return
    line = f"{submitted.job_id} {submitted.status}"
    if submitted.run_at:
        line += f", runs at {_when(submitted.run_at, tz)}"
    if submitted.duplicate_of:
        line += f" (duplicate of {submitted.duplicate_of})"
    if not submitted.new and submitted.status == Status.SCHEDULED:
        line += " (already enqueued under this key)"
    if submitted.error:
        line += f": {submitted.error.description}"
        if submitted.existing_job_id:  # IDEMPOTENCY_KEY_REUSED: what differs, a line each
            line += "".join(f"\n  {e['field']}: {e['message']}" for e in submitted.error.fields or [])
    print(line, file=out)


async def find_job(
    command: str, args: argparse.Namespace, *, settings: Settings, redis: Redis
) -> JobRecord | int | None:
    """The job ``args.id`` names, on ``args.portal`` if given (``callq status|cancel|dead show ID``).

    Returns the record, None if there is none, or an exit code after printing why the question
    cannot be answered: an unknown ``--portal`` or an idempotency key on several portals (2).
    """
    portal: str | None = getattr(args, "portal", None)
    try:
        if portal is not None:
            settings.portal(portal)
        return await Producer(redis, settings=settings).status(args.id, portal=portal)
    except (UnknownPortalError, AmbiguousKeyError) as exc:
        hint = " with --portal" if isinstance(exc, AmbiguousKeyError) else ""
        print(f"callq {command}: {exc}{hint}", file=sys.stderr)
        return 2


async def status(
    args: argparse.Namespace, *, settings: Settings, redis: Redis, out: TextIO = sys.stdout
) -> int:
    """``callq status ID``: the job's state (``scheduled`` with run_at, ``running``, or its outcome)."""
    record = await find_job("status", args, settings=settings, redis=redis)
    if isinstance(record, int):
        return record
    if record is None:
        print(f"callq status: no job with id or idempotency key {args.id!r}", file=sys.stderr)
        return 1
    pending, portal = record.state not in FINAL_STATUSES, record.job.portal
    halt = await portal_halt(redis, settings, portal) if pending else None
    moved = await portal_move(redis, settings, portal) if pending else None
    _print_record(record, settings=settings, as_json=args.json, out=out, halt=halt, moved=moved)
    return 0


async def cancel(
    args: argparse.Namespace, *, settings: Settings, redis: Redis, out: TextIO = sys.stdout
) -> int:
    """``callq cancel ID``: cancel a job that has not started."""
    found = await find_job("cancel", args, settings=settings, redis=redis)
    if isinstance(found, int):
        return found
    cancelled, record = (
        (False, None)
        if found is None
        else await Producer(redis, settings=settings).cancel(found.job_id, by="callq cancel")
    )
    if record is None:
        print(f"callq cancel: no job with id or idempotency key {args.id!r}", file=sys.stderr)
        return 1
    if not cancelled:
        print(f"callq cancel: {not_cancellable(record)}", file=sys.stderr)
        if args.json:
            show_in_full(out, [record.job.from_line])
            print(json_output(record_view(record, settings=settings), lines=[record.job.from_line]), file=out)
        return 1
    _print_record(record, settings=settings, as_json=args.json, out=out)
    return 0


def add_list_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``callq list``."""
    parser.add_argument(
        "--scheduled", action="store_true", help="only jobs waiting to run (scheduled, retrying)"
    )
    parser.add_argument("--portal", help="only this portal")
    parser.add_argument("--line", help="only this line")
    parser.add_argument(
        "--limit", type=int_in(1, 100_000), default=100, help="at most this many (default 100)"
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output (one JSON list)")


async def list_jobs(
    args: argparse.Namespace, *, settings: Settings, redis: Redis, out: TextIO = sys.stdout
) -> int:
    """``callq list``: pending jobs (``--scheduled``: waiting ones) in order of run time."""
    ledger = Producer(redis, settings=settings).ledger
    wanted = {Status.SCHEDULED, Status.RETRYING}
    redials = {CallState.REDIAL}  # a succeeded job waiting for its redial (issue 14)
    if not args.scheduled:
        wanted.add(Status.RUNNING)
        redials.add(CallState.DIALLING)

    def listed(record: JobRecord) -> bool:
        job = record.job
        redial = record.state == Status.SUCCEEDED and record.call is not None and record.call.state in redials
        return (
            (record.state in wanted or redial)
            and args.portal in (None, job.portal)
            and args.line in (None, job.from_line)
        )

    # attempts in flight first (found even when arq gave their job up), then the queue by run time
    found = [r for r in await ledger.in_flight() if listed(r)] if not args.scheduled else []
    seen = {r.job_id for r in found}
    start, page = 0, 500
    while len(found) < args.limit:
        batch = await ledger.queued(start=start, count=page)
        found += [r for r in batch if r.job_id not in seen and listed(r)]
        if len(batch) < page:
            break
        start += page
    found = found[: args.limit]
    lines = {r.job.from_line for r in found}
    show_in_full(out, lines)
    if args.json:
        print(json_output([record_view(r, settings=settings) for r in found], lines=lines), file=out)
        return 0
    for r in found:
        tz = settings.portals[r.job.portal].timezone if r.job.portal in settings.portals else UTC
        when = _when(r.run_at, tz) if r.run_at else "-"
        print(
            f"{r.job_id}  {r.state:<9}  {when}  {_shown(r.job.portal)}/{_shown(r.job.from_line)}  "
            f"{_shown(mask_number(r.job.to_number) if r.job.to_number else None)}  attempts {r.attempts}  "
            f"call {call_column(r)}",
            file=out,
        )
    if not found:
        print("no jobs", file=out)
    return 0


def call_column(record: JobRecord) -> str:
    """``callq list``'s call column: the final call result once known (``connected``, ``busy``, …),
    else where the follow-up is (``awaiting``, ``redial``, ``dialling``); ``-`` without one."""
    call = record.call
    if call is None:
        return "-"
    if call.state is CallState.ENDED and call.final is not None:
        return str(call.final.get("result", call.state))
    return str(call.state)


def json_output(data: Any, *, lines: Collection[str] = ()) -> str:
    """``--json`` output: numbers and secrets masked in the data first (a producer's metadata too), so
    that the masking of the CLI's output stream finds nothing left that would make the JSON invalid
    (a bare 11-digit value masked in the text would no longer be a JSON number). ``lines``, the
    line ids shown, are configuration and stay as they are (see :func:`ops.cli.logs.show_in_full`)."""
    return json.dumps(redact_value(data, kept=lines), ensure_ascii=False)


def _print_record(
    record: JobRecord,
    *,
    settings: Settings,
    as_json: bool,
    out: TextIO,
    halt: dict[str, Any] | None = None,
    moved: dict[str, str] | None = None,
) -> None:
    view = record_view(record, settings=settings)
    show_in_full(out, [record.job.from_line])
    if halt is not None:
        view["portal_halted"] = halt
    if moved is not None:
        view["portal_moved"] = moved
    if as_json:
        print(json_output(view, lines=[record.job.from_line]), file=out)
        return
    tz = settings.portals[record.job.portal].timezone if record.job.portal in settings.portals else UTC
    head = f"{record.job_id} {record.state}"
    if record.run_at:
        head += f", runs at {_when(record.run_at, tz)}"
    print(head, file=out)
    print(
        f"  portal {_shown(view['portal'])}  line {_shown(view['from_line'])}  to {_shown(view['to_number'])}"
        f"  attempts {record.attempts}",
        file=out,
    )
    if halt is not None:
        print(
            f"  PORTAL HALTED: {halt['code']}: {halt['description']} (since {halt['since']}, until {halt['until']});"
            f" no call starts until it lifts or `callq resume {record.job.portal}`",
            file=out,
        )
    if moved is not None:
        print(
            f"  PORTAL MOVED: from {moved['from']} to {moved['to']} (since {moved['since']}); calls go there;"
            " update the portal's address in the configuration (`callq check`)",
            file=out,
        )
    if record.outcome:
        o = record.outcome
        extra = f"  call_id {o['call_id']}" if o.get("call_id") else ""
        extra += f"  duplicate_of {o['duplicate_of']}" if o.get("duplicate_of") else ""
        error = o.get("error")
        extra += f"  error {error['code']}: {error['description']}" if error else ""
        print(f"  finished {o.get('finished_at')}{extra}", file=out)


def _when(moment: datetime, tz: Any) -> str:
    """``2026-11-22 10:00:00 UTC (2026-11-22 13:00:00 MSK Europe/Moscow)``; a portal in UTC shows
    UTC once, and a zone whose abbreviation is its name (``Etc/GMT-3`` → ``+03``) is named once."""
    utc = f"{moment.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC"
    local = moment.astimezone(tz)
    if local.tzname() == "UTC":
        return utc
    name = str(tz)
    zone = local.tzname() if local.tzname() == name else f"{local.tzname()} {name}"
    return f"{utc} ({local:%Y-%m-%d %H:%M:%S} {zone})"


def _shown(value: Any) -> str:
    """A field of a record for the text output: a rejected job may lack it (``-``, not ``None``)."""
    return "-" if value is None or value == "" else str(value)


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``callq status`` and ``callq cancel``: the job, by id or idempotency key."""
    parser.add_argument("id", help="job id or idempotency key")
    parser.add_argument("--portal", help="the portal of an idempotency key (needed when several have it)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


# sys.stdout is read when a verb runs: the command swaps in its masking stream first
ENQUEUE = Verb(
    name="enqueue",
    help="submit a callback, or a CSV/JSONL file of them (--file)",
    add_arguments=add_enqueue_arguments,
    run=with_redis(
        lambda args, settings, redis: enqueue(args, settings=settings, redis=redis, out=sys.stdout)
    ),
)
STATUS = Verb(
    name="status",
    help="show a job's state or outcome",
    add_arguments=add_job_arguments,
    run=with_redis(
        lambda args, settings, redis: status(args, settings=settings, redis=redis, out=sys.stdout)
    ),
)
CANCEL = Verb(
    name="cancel",
    help="cancel a job not yet started",
    add_arguments=add_job_arguments,
    run=with_redis(
        lambda args, settings, redis: cancel(args, settings=settings, redis=redis, out=sys.stdout)
    ),
)
LIST = Verb(
    name="list",
    help="list pending jobs in order of run time",
    add_arguments=add_list_arguments,
    run=with_redis(
        lambda args, settings, redis: list_jobs(args, settings=settings, redis=redis, out=sys.stdout)
    ),
)
