"""``callq dead list|show|replay|purge``: the dead-letter store for ops (contract §6)."""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from redis.asyncio import Redis

from ops.cli.jobs import find_job, json_output
from ops.cli.logs import show_in_full
from ops.cli.numbers import int_in
from ops.cli.timeparse import TimeParseError, parse_duration
from ops.cli.verb import Verb, with_redis
from producers.api import Producer
from producers.deadletters import DeadLetters
from producers.views import record_view
from schemas.config import Settings
from schemas.policy.redact import mask_number
from schemas.states import Status
from schemas.store.records import JobRecord


def add_dead_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands of ``callq dead``."""
    sub = parser.add_subparsers(dest="dead_command", required=True, metavar="ACTION")
    listing = sub.add_parser("list", help="dead jobs, oldest first")
    listing.add_argument("--portal")
    listing.add_argument("--code", help="only this error code (case-insensitive), e.g. OUTCOME_UNKNOWN")
    listing.add_argument("--limit", type=int_in(1, 100_000), default=100)
    listing.add_argument("--json", action="store_true")
    show = sub.add_parser("show", help="one dead job with every attempt")
    show.add_argument("id", help="job id or idempotency key")
    show.add_argument("--portal", help="the portal of an idempotency key (needed when several have it)")
    show.add_argument("--json", action="store_true")
    replay = sub.add_parser("replay", help="replay as fresh jobs (hours, dedupe and deadline apply)")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", help="job id or idempotency key")
    which.add_argument("--all", action="store_true", help="every dead job (with --code: of that code)")
    replay.add_argument("--code", help="with --all: only this error code")
    replay.add_argument(
        "--portal", help="with --all: only this portal; with ID: the portal of an idempotency key"
    )
    replay.add_argument("--json", action="store_true")
    purge = sub.add_parser("purge", help="delete dead jobs for good")
    purge.add_argument("--older-than", metavar="DURATION", help="only those dead longer than this (e.g. 7d)")
    purge.add_argument("--json", action="store_true")


async def dead(
    args: argparse.Namespace, *, settings: Settings, redis: Redis, out: TextIO = sys.stdout
) -> int:
    """Run ``callq dead ACTION``."""
    producer = Producer(redis, settings=settings)
    store = DeadLetters(producer)
    if args.dead_command == "list":
        records = await store.list(portal=args.portal, code=args.code, limit=args.limit)
        _emit([_summary(r) for r in records], args.json, out, empty="no dead jobs")
        return 0
    if args.dead_command == "show":
        record = await _find_dead("show", args, settings=settings, redis=redis)
        if isinstance(record, int):
            return record
        if record is None:
            print(f"callq dead show: no dead job {args.id!r}", file=sys.stderr)
            return 1
        _emit([record_view(record, settings=settings)], args.json, out, single=True)
        return 0
    if args.dead_command == "replay":
        return await _replay(args, store, out, settings=settings, redis=redis)
    older = None
    if args.older_than:
        try:
            older = parse_duration(args.older_than)
        except TimeParseError as exc:
            print(f"callq dead purge: {exc}", file=sys.stderr)
            return 2
    count = await store.purge(older_than=older, now=producer.clock())
    _emit([{"purged": count}], args.json, out, single=True)
    return 0


async def _find_dead(
    command: str, args: argparse.Namespace, *, settings: Settings, redis: Redis
) -> JobRecord | int | None:
    """The dead job ``args.id`` names (on ``args.portal``), None, or an exit code (see ``find_job``)."""
    found = await find_job(f"dead {command}", args, settings=settings, redis=redis)
    return found if found is None or isinstance(found, int) or found.state == Status.DEAD else None


async def _replay(
    args: argparse.Namespace, store: DeadLetters, out: TextIO, *, settings: Settings, redis: Redis
) -> int:
    if args.all:
        ids = [r.job_id for r in await store.list(portal=args.portal, code=args.code, limit=1_000_000)]
    else:
        record = await _find_dead("replay", args, settings=settings, redis=redis)
        if isinstance(record, int):
            return record
        if record is None:
            print(f"callq dead replay: no dead job {args.id!r}", file=sys.stderr)
            return 1
        ids = [record.job_id]
    rows: list[dict[str, Any]] = []
    failed = False
    for job_id in ids:
        done = await store.replay(job_id)
        failed = failed or done.submitted is None
        sub = done.submitted
        rows.append(
            {
                "replayed": job_id,
                "job_id": sub.job_id if sub else None,
                "status": str(sub.status) if sub else None,
                "run_at": sub.run_at.isoformat() if sub and sub.run_at else None,
                "error": done.error,
            }
        )
    _emit(rows, args.json, out, empty="no dead jobs to replay")
    return 1 if failed else 0


def _summary(record: JobRecord) -> dict[str, Any]:
    error = (record.outcome or {}).get("error") or {}
    return {
        "job_id": record.job_id,
        "portal": record.job.portal,
        "from_line": record.job.from_line,
        "to_number": mask_number(record.job.to_number),
        "code": error.get("code"),
        "description": error.get("description"),
        "attempts": record.attempts,
        "died_at": (record.outcome or {}).get("finished_at"),
    }


def _emit(
    rows: list[dict[str, Any]], as_json: bool, out: TextIO, *, empty: str = "", single: bool = False
) -> None:
    lines = {str(row["from_line"]) for row in rows if row.get("from_line")}
    show_in_full(out, lines)
    if as_json:
        print(json_output(rows[0] if single else rows, lines=lines), file=out)
        return
    if not rows and empty:
        print(empty, file=out)
    for row in rows:
        print("  ".join(f"{k}={v}" for k, v in row.items() if v is not None and k != "attempt_log"), file=out)
        for n, attempt in enumerate(row.get("attempt_log") or [], start=1):
            print(f"    attempt {n}: " + "  ".join(f"{k}={v}" for k, v in attempt.items()), file=out)


VERB = Verb(
    name="dead",
    help="dead letters: list, show, replay, purge",
    add_arguments=add_dead_arguments,
    run=with_redis(lambda args, settings, redis: dead(args, settings=settings, redis=redis, out=sys.stdout)),
)
