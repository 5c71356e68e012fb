"""The rules of a job's rate-limit slots: the line's pacing, then the portal's bucket.

START takes them in the same step as the attempt (``schemas/store/lua/_slots.lua``, asked by
:func:`worker.jobs.run.slot_request`). A slot in the future is *held*: the job is put back to wake
just before it (its reservations kept in the record's ``slots`` field), then waits the last
fraction precisely, so calls start on their slot rather than up to a poll interval late. A job
never sleeps in a worker for long. A redial (:mod:`worker.calls.redial`) does not go through START:
it takes the same slots, by the same rules, with :func:`take_slots` before its own step.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.config import PortalConfig
from schemas.policy.bucket import EARLY_WAKE_S, PRECISE_WAIT_S, Bucket, pacing_bucket
from schemas.store.records import JobRecord, from_ms, to_ms
from worker.jobs.ratelimit import RateLimiter

LINE_LATENESS_MS = 50
"""A line slot used later than this is taken again: a late start followed by an on-time one would
start two callbacks closer than ``min_interval``."""


def usable_lateness_ms(bucket: Bucket) -> float:
    """How late a held portal slot may still be used.

    A slot used late while the next is used on time bunches two requests; half an interval of
    lateness stays within the one request of headroom of :func:`schemas.policy.bucket.pacing_bucket`.
    Later than that (no worker was running, the line closed) the slot is dropped and taken again.
    """
    return min(bucket.interval_ms / 2, 250.0)


def effective_bucket(portal: PortalConfig) -> Bucket:
    """The bucket callq paces ``portal`` to (:func:`schemas.policy.bucket.pacing_bucket`)."""
    return pacing_bucket(portal.rate, portal.burst)


@dataclass(frozen=True)
class Hold:
    """Put the job back until ``wake``, keeping the reservations ``slots``."""

    wake: datetime
    slots: dict[str, int]

    @property
    def slots_json(self) -> str:
        """For the record's ``slots`` field."""
        return json.dumps(self.slots, separators=(",", ":"))


async def take_slots(
    limiter: RateLimiter, record: JobRecord, portal: PortalConfig, *, now: datetime
) -> Hold | None:
    """Reserve what the job still lacks. None: it may start now (after a short precise wait).

    Args:
        limiter: the shared buckets.
        record: the job's record (its ``slots`` are reservations already held).
        portal: the job's portal.
        now: the current time.
    """
    bucket = effective_bucket(portal)
    now_ms = to_ms(now)
    lateness = {"line": LINE_LATENESS_MS, "portal": usable_lateness_ms(bucket)}
    held = {name: at for name, at in record.slots.items() if at >= now_ms - lateness.get(name, 0)}
    job = record.job
    min_interval_s = portal.line(job.from_line).min_interval_s
    if min_interval_s > 0 and "line" not in held:
        delay = await limiter.reserve_line(portal.name, job.from_line, min_interval_s)
        held["line"] = to_ms(now + timedelta(seconds=delay))
        if delay > PRECISE_WAIT_S:
            return Hold(wake=from_ms(held["line"]) - timedelta(seconds=EARLY_WAKE_S), slots=held)
    if "portal" not in held:
        delay = await limiter.reserve_portal(portal.name, bucket)
        held["portal"] = to_ms(now + timedelta(seconds=delay))
        if delay > PRECISE_WAIT_S:
            return Hold(wake=from_ms(held["portal"]) - timedelta(seconds=EARLY_WAKE_S), slots=held)
    remaining_s = (max(held.values()) - to_ms(now)) / 1000
    if remaining_s > 0:
        await asyncio.sleep(remaining_s)
    return None
