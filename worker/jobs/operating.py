"""Acting on callback.start's execution-time figures: keep each answer's reading for every worker,
pause the portal's callbacks before the budget is spent, and after an ``OPERATION_TIME_LIMIT`` until
the budget frees up. The decisions are :mod:`worker.policy.operating`'s."""

from __future__ import annotations

import json

import structlog

from schemas.config import PortalConfig
from schemas.store.ledger import Reading
from worker.bitrix.client import CALLBACK_START
from worker.jobs.ratelimit import OPERATING_TTL_MS, RateLimiter
from worker.policy.operating import OperatingReading, budget_pause_s, refusal_wait_s

log = structlog.get_logger("callq.worker")


def kept_reading(portal: PortalConfig, reading: OperatingReading | None) -> Reading | None:
    """A callback.start answer's reading, for FINALIZE to keep in the same step."""
    if reading is None:
        return None
    return Reading(
        portal=portal.name,
        method=CALLBACK_START,
        reading_json=json.dumps(reading.to_dict()),
        finish_ms=int(reading.finish_s * 1000),
        ttl_ms=OPERATING_TTL_MS,
    )


async def note_operating(
    limiter: RateLimiter,
    portal: PortalConfig,
    reading: OperatingReading | None,
    *,
    now_s: float,
    kept: bool = False,
) -> float:
    """Keep a successful answer's reading; pause the portal's callbacks if the budget nears its end.

    Args:
        limiter: the shared buckets.
        portal: the portal that answered.
        reading: the answer's reading, if it had one.
        now_s: the current unix time.
        kept: FINALIZE kept the reading already (:func:`kept_reading`): only the pause is left.

    Returns:
        The pause begun (seconds), or 0.
    """
    if reading is None:
        return 0.0
    if not kept and not await limiter.record_operating(portal.name, CALLBACK_START, reading):
        return 0.0  # an older answer than one already kept
    wanted = budget_pause_s(reading, budget_s=portal.operating_budget_s, now_s=now_s)
    if wanted <= 0:
        return 0.0
    if kept:
        newest = await limiter.last_operating(portal.name, CALLBACK_START)
        if newest is not None and newest.finish_s > reading.finish_s:
            return 0.0  # a newer answer was kept: it decides
    pause_s = await limiter.pause_until(portal.name, wanted)
    log.warning(
        "portal.operating_paused",
        portal=portal.name,
        operating_s=round(reading.operating_s, 3),
        budget_s=portal.operating_budget_s,
        reset_at=reading.reset_at_s,
        pause_s=round(pause_s, 3),
    )
    return pause_s


async def pause_after_refusal(
    limiter: RateLimiter, portal: PortalConfig, reading: OperatingReading | None, *, now_s: float
) -> float:
    """Bitrix24 refused callback.start for its execution time: pause until ``operating_reset_at`` (of
    the refusal if it said, else of the newest answer before it), or a minute if that is unknown.

    Returns:
        The pause in force (seconds).
    """
    if reading is not None:
        await limiter.record_operating(portal.name, CALLBACK_START, reading)
    else:
        reading = await limiter.last_operating(portal.name, CALLBACK_START)
    return await limiter.pause_until(portal.name, refusal_wait_s(reading, now_s=now_s))
