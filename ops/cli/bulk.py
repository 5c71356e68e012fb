"""``callq enqueue --file``: a CSV or JSONL file of callbacks through :mod:`producers.bulk` (the same
module the dashboard's import uses), with a progress bar on a terminal and a summary at the end.

The progress bar is one line rewritten with ``\\r`` on stderr, only when stderr is a terminal: a
dependency (rich, tqdm) for one line was not worth it, and logs or pipes get no control characters.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TextIO

from redis.asyncio import Redis

from producers.api import Producer
from producers.bulk import FileProblem, RowVerdict, Summary, import_rows, preview, read_rows
from schemas.config import Settings, UnknownPortalError
from schemas.policy.redact import redact_value

SHOWN_ROWS = 50
"""Rows not queued that the summary lists one by one (all of them with ``--json``)."""

LABELS = {
    RowVerdict.QUEUED: "queued",
    RowVerdict.REPEAT: "already queued (same idempotency key: nothing new)",
    RowVerdict.DUPLICATE: "duplicate (line and number already waiting: recorded, no call)",
    RowVerdict.EXPIRED: "expired (deadline cannot be met: recorded, no call)",
    RowVerdict.REJECTED: "rejected (not queued)",
}


class ProgressBar:
    """``[#####.....] 500/1000 rows`` on a terminal, rewritten in place; nothing elsewhere."""

    def __init__(self, stream: TextIO, *, width: int = 30) -> None:
        self.stream, self.width = stream, width
        self.shown = stream.isatty()

    def __call__(self, done: int, total: int) -> None:
        if not self.shown or total == 0:
            return
        filled = self.width * done // total
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {done}/{total} rows")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


async def enqueue_file(args: argparse.Namespace, *, settings: Settings, redis: Redis, out: TextIO) -> int:
    """Import ``args.file``; exit 0 when every row was queued or already was, 1 if any was rejected
    (or expired, or a duplicate), 2 if the file itself cannot be imported."""
    try:
        portal = settings.portal(args.portal).name if args.portal or len(settings.portals) == 1 else None
        data = await asyncio.to_thread(_read, args.file)
        rows = read_rows(data, filename=args.file)
    except (UnknownPortalError, FileProblem, OSError) as exc:
        print(f"callq enqueue: {args.file}: {exc}", file=sys.stderr)
        return 2
    producer = Producer(redis, settings=settings)
    if args.dry_run:
        summary, _ = await preview(producer, rows, default_portal=portal)
    else:
        bar = ProgressBar(sys.stderr)
        try:
            summary = await import_rows(producer, rows, default_portal=portal, progress=bar)
        finally:
            bar.close()
    print_summary(summary, as_json=args.json, dry_run=args.dry_run, out=out)
    not_queued = summary.total - summary.counts[RowVerdict.QUEUED] - summary.counts[RowVerdict.REPEAT]
    return 1 if not_queued else 0


def _read(path: str) -> bytes:
    return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()


def print_summary(summary: Summary, *, as_json: bool, dry_run: bool, out: TextIO) -> None:
    """The counts, then each row not queued with its reason (numbers masked)."""
    if as_json:
        data = redact_value({"dry_run": dry_run, **summary.to_dict()})
        print(json.dumps(data, ensure_ascii=False), file=out)
        return
    head = "rows checked, nothing queued (--dry-run)" if dry_run else "rows"
    print(f"{summary.total} {head}", file=out)
    for verdict, label in LABELS.items():
        count = summary.counts[verdict]
        if count or verdict in (RowVerdict.QUEUED, RowVerdict.REJECTED):
            shown = f"would be {label}" if dry_run and verdict is RowVerdict.QUEUED else label
            print(f"  {count:>7} {shown}", file=out)
    listed = [row for row in summary.rows if row.verdict is not RowVerdict.REPEAT]
    for row in listed[:SHOWN_ROWS]:
        who = f" {row.number}" if row.number else ""
        print(f"  line {row.line}{who}: {row.verdict}: {row.reason or ''}".rstrip(": "), file=out)
    if len(listed) > SHOWN_ROWS:
        print(f"  … and {len(listed) - SHOWN_ROWS} more (--json lists every row)", file=out)
