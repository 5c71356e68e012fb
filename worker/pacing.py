"""Taking a job's rate-limit slots before its attempt: the line's pacing, then the portal's bucket.

A slot in the future is *held*: the job is put back to wake just before it (its reservations kept
in the record's ``slots`` field), then waits the last fraction precisely, so calls start on their
slot rather than up to a poll interval late. A job never sleeps in a worker for long.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from schemas.config import PortalConfig
from schemas.ledger import JobRecord, from_ms, to_ms
from worker.ratelimit import Bucket, RateLimiter

PRECISE_WAIT_S = 0.6
"""A slot at most this far away is waited for in the worker; farther, the job is put back."""

EARLY_WAKE_S = 0.4
"""A put-back job wakes this long before its slot (more than arq's 0.25 s poll), to start on time."""


STALE_SLOT_MS = 5000
"""A held slot older than this is dropped and reserved again rather than used late in a burst."""


def effective_bucket(portal: PortalConfig) -> Bucket:
    """The bucket callq paces to: Bitrix24's, less one request of headroom for network jitter.

    Two requests reserved one interval apart can arrive closer together than that; with the
    bucket exactly full, the second would be refused. One request of headroom absorbs it.
    """
    return Bucket(rate=portal.rate, burst=max(portal.burst - 1, 1))


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
    # a reservation long past was not used (the line closed, the worker stalled): take a new one
    held = {name: at for name, at in record.slots.items() if at >= to_ms(now) - STALE_SLOT_MS}
    job = record.job
    min_interval_s = portal.line(job.from_line).min_interval_s
    if min_interval_s > 0 and "line" not in held:
        delay = await limiter.reserve_line(portal.name, job.from_line, min_interval_s)
        held["line"] = to_ms(now + timedelta(seconds=delay))
        if delay > PRECISE_WAIT_S:
            return Hold(wake=from_ms(held["line"]) - timedelta(seconds=EARLY_WAKE_S), slots=held)
    if "portal" not in held:
        delay = await limiter.reserve_portal(portal.name, effective_bucket(portal))
        held["portal"] = to_ms(now + timedelta(seconds=delay))
        if delay > PRECISE_WAIT_S:
            return Hold(wake=from_ms(held["portal"]) - timedelta(seconds=EARLY_WAKE_S), slots=held)
    remaining_s = (max(held.values()) - to_ms(now)) / 1000
    if remaining_s > 0:
        await asyncio.sleep(remaining_s)
    return None
