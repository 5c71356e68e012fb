"""What the dashboard's pages read, each a bounded number of Redis round trips whatever the number of
jobs: the per-portal indexes and counters the store keeps (:mod:`schemas.store.keys`: ``scheduled``,
``dead_on``, ``minute_stats``), never a scan of every record.

The one read that grows with something other than the page is the running count (every attempt in
flight, bounded by the workers' concurrency); filtering the scheduled list by line or text reads at
most :data:`SCAN_LIMIT` records a page, and says so when it stopped there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from redis.asyncio import Redis

from producers.views import raw_text, shown_text
from schemas.config import PortalConfig
from schemas.policy.bucket import pacing_bucket
from schemas.policy.calendar import next_open
from schemas.policy.redact import SHAPES, Redactor, mask_number
from schemas.store.keys import Keys
from schemas.store.reads import RecordReader
from schemas.store.records import JobRecord, decode_text, to_ms
from schemas.store.stats import LATENCY_BOUNDS_MS, LATENCY_COUNT, LATENCY_SUM, latency_quantile, minute_of
from schemas.wire.job import RECORD_FIELDS

MINUTES = 60
SCAN_LIMIT = 2000
"""Records a filtered page of the scheduled list reads at most before it stops and says so."""


@dataclass(frozen=True)
class Opening:
    """When a line (or the portal's own hours, ``line`` None) opens next; None: open now or never."""

    line: str | None
    at: datetime | None
    open_now: bool


@dataclass(frozen=True)
class PortalOverview:
    """One portal at a glance."""

    name: str
    bucket_used: float
    burst: int
    paused_ms: int
    pause_reason: str | None
    halt: dict[str, Any] | None
    due: int
    later: int
    running: int
    dead: int
    openings: list[Opening]
    minutes: list[dict[str, int]]
    latency_avg_ms: list[float | None]
    latency_p95_ms: list[float | None]


async def overview(redis: Redis, keys: Keys, portal: PortalConfig, *, now: datetime) -> PortalOverview:
    """The overview of ``portal``: two round trips (its keys, its running attempts)."""
    now_ms = to_ms(now)
    first = minute_of(now_ms) - MINUTES + 1
    name = portal.name
    async with redis.pipeline(transaction=False) as pipe:
        pipe.get(keys.rate_bucket(name))
        pipe.pttl(keys.portal_pause(name))
        pipe.get(keys.portal_pause(name))
        pipe.get(keys.portal_halt(name))
        pipe.pttl(keys.portal_halt(name))
        pipe.zcount(keys.scheduled(name), "-inf", now_ms)
        pipe.zcount(keys.scheduled(name), f"({now_ms}", "+inf")
        pipe.zcard(keys.dead_on(name))
        for minute in range(first, first + MINUTES):
            pipe.hgetall(keys.minute_stats(name, minute))
        replies = await pipe.execute()
    tat, pause_ms, pause_value, halt_raw, halt_ms, due, later, dead = replies[:8]
    bucket = pacing_bucket(portal.rate, portal.burst)
    used = max(0.0, float(tat or 0) - now_ms) / bucket.interval_ms if tat else 0.0
    halt = json.loads(halt_raw) if halt_raw else None
    if halt is not None:
        halt["remaining_s"] = max(int(halt_ms), 0) // 1000
    minutes, averages, p95 = _minutes(replies[8:])
    return PortalOverview(
        name=name,
        bucket_used=min(used, float(bucket.burst)),
        burst=bucket.burst,
        paused_ms=max(int(pause_ms), 0),
        pause_reason=decode_text(pause_value) if pause_value else None,
        halt=halt,
        due=int(due),
        later=int(later),
        running=await running_on(redis, keys, name),
        dead=int(dead),
        openings=openings(portal, now=now),
        minutes=minutes,
        latency_avg_ms=averages,
        latency_p95_ms=p95,
    )


def _minutes(
    raws: Sequence[dict[Any, Any]],
) -> tuple[list[dict[str, int]], list[float | None], list[float | None]]:
    minutes: list[dict[str, int]] = []
    averages: list[float | None] = []
    p95: list[float | None] = []
    for raw in raws:
        data = {decode_text(k): int(v) for k, v in raw.items()}
        minutes.append(data)
        count = data.get(LATENCY_COUNT, 0)
        averages.append(data.get(LATENCY_SUM, 0) / count if count else None)
        buckets = [data.get(f"lat:{i}", 0) for i in range(len(LATENCY_BOUNDS_MS) + 1)]
        p95.append(latency_quantile(buckets, 0.95))
    return minutes, averages, p95


async def running_on(redis: Redis, keys: Keys, portal: str) -> int:
    """Attempts in flight on ``portal``: the running index is bounded by the workers' concurrency."""
    ids = [decode_text(m) for m in await redis.zrange(keys.running, 0, -1)]
    if not ids:
        return 0
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in ids:
            # the job's portal: its own field (CallbackJob.to_fields), or its JSON (older records)
            pipe.hmget(keys.job(job_id), [RECORD_FIELDS["portal"], "job"])
        replies = await pipe.execute()
    return sum(1 for short, raw in replies if _portal_of(short, raw) == portal)


def _portal_of(short: bytes | None, raw: bytes | None) -> str | None:
    if short:
        return decode_text(short)
    if raw:
        job = json.loads(raw)
        return job.get("portal") if isinstance(job, dict) else None
    return None


def openings(portal: PortalConfig, *, now: datetime) -> list[Opening]:
    """The next opening of the portal's hours and of each line with hours of its own."""
    found: list[Opening] = []
    for line in [None, *sorted(portal.lines)]:
        if line is not None and portal.line(line).hours is None:
            continue
        calendar = portal.calendar_for(line or "")
        at = next_open(calendar, now)
        found.append(Opening(line=line, at=at, open_now=at is not None and at <= now))
    return found


@dataclass(frozen=True)
class ScheduledFilter:
    """What the scheduled list shows: one portal, a time range (ms, None: open), a line, a text."""

    portal: str
    start_ms: int | None = None
    end_ms: int | None = None
    line: str | None = None
    text: str | None = None

    @property
    def narrows(self) -> bool:
        """Whether records must be read to filter (the index orders by time only)."""
        return bool(self.line or self.text)


@dataclass
class ScheduledPage:
    """One page of the scheduled list. ``cursor`` is where the next page starts in the index."""

    records: list[JobRecord] = field(default_factory=list)
    total_in_range: int = 0
    next_cursor: int | None = None
    scanned: int = 0
    stopped_early: bool = False


async def scheduled(
    reader: RecordReader,
    f: ScheduledFilter,
    *,
    cursor: int = 0,
    limit: int = 50,
    redactor: Redactor = SHAPES,
) -> ScheduledPage:
    """A page of the portal's waiting jobs in order of ``run_at``, from index position ``cursor``; a text
    filter matches what the page shows (masked by ``redactor``, see :func:`_matches`)."""
    redis, index = reader.redis, reader.keys.scheduled(f.portal)
    low = "-inf" if f.start_ms is None else f.start_ms
    high = "+inf" if f.end_ms is None else f.end_ms
    page = ScheduledPage(total_in_range=int(await redis.zcount(index, low, high)))
    position = cursor
    chunk = limit + 1 if not f.narrows else 250
    while True:
        ids = [decode_text(m) for m in await redis.zrangebyscore(index, low, high, start=position, num=chunk)]
        records = await reader.read_many(ids)
        for offset, record in enumerate(records):
            page.scanned += 1
            if _matches(record, f, redactor):
                if len(page.records) == limit:
                    page.next_cursor = position + offset
                    return page
                page.records.append(record)
        position += len(ids)
        if len(ids) < chunk:
            return page
        if page.scanned >= SCAN_LIMIT:
            page.stopped_early, page.next_cursor = True, position
            return page


def _matches(record: JobRecord, f: ScheduledFilter, redactor: Redactor = SHAPES) -> bool:
    """Whether ``record`` passes the filter. A text finds only what the dashboard shows: the number by
    exactly what its mask shows (its last 4 digits, or the whole mask ``+7911***4567``), never a longer
    run of its digits (each digit more would be an oracle: a read-only token could recover the number
    one digit at a time); other text in the job's text, key, id and metadata as masked on the page
    (:func:`producers.views.shown_text`), so that a number or a secret inside them cannot be probed
    either."""
    job = record.job
    if f.line and job.from_line != f.line:
        return False
    if not f.text:
        return True
    needle = f.text.lower()
    if job.to_number and needle in (job.to_number[-4:], (mask_number(job.to_number) or "").lower()):
        return True  # what the mask shows: searched, never more
    if "*" not in needle and needle not in raw_text(record).lower():
        # masking only hides text (a mask keeps a prefix and a suffix of what it hides): a needle
        # without '*' that the raw text lacks is not on the page either. The cheap test first: the
        # masking is the cost of a search (2,000 records masked took 1.6 s)
        return False
    return needle in shown_text(record, redactor=redactor).lower()


async def dead_page(
    reader: RecordReader, portal: str, *, offset: int = 0, limit: int = 50
) -> tuple[list[JobRecord], int]:
    """The portal's dead jobs, newest first, one page, and how many there are."""
    index = reader.keys.dead_on(portal)
    total = int(await reader.redis.zcard(index))
    ids = [decode_text(m) for m in await reader.redis.zrevrange(index, offset, offset + limit - 1)]
    return await reader.read_many(ids), total
