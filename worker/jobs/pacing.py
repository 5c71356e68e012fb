"""The rules of a job's rate-limit slots: the line's pacing, then the portal's bucket.

START takes them in the same step as the attempt (``schemas/store/lua/_slots.lua``, asked by
:func:`worker.jobs.run.slot_request`). A slot in the future is *held*: the job is put back to wake
just before it (its reservations kept in the record's ``slots`` field), then waits the last
fraction precisely, so calls start on their slot rather than up to a poll interval late. A job
never sleeps in a worker for long.
"""

from __future__ import annotations

from schemas.config import PortalConfig
from schemas.policy.bucket import Bucket, pacing_bucket

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
