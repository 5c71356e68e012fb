"""Acting on callback.start's execution-time figures: keep each answer's reading for every worker,
pause the portal's callbacks before the budget is spent, and after an ``OPERATION_TIME_LIMIT`` until
the budget frees up. The decisions are :mod:`worker.policy.operating`'s."""

from __future__ import annotations

import structlog

from schemas.config import PortalConfig
from worker.bitrix.client import CALLBACK_START
from worker.jobs.ratelimit import RateLimiter
from worker.policy.operating import OperatingReading, budget_pause_s, refusal_wait_s

log = structlog.get_logger("callq.worker")


async def note_operating(
    limiter: RateLimiter, portal: PortalConfig, reading: OperatingReading | None, *, now_s: float
) -> float:
    """Keep a successful answer's reading; pause the portal's callbacks if the budget nears its end.

    Returns:
        The pause begun (seconds), or 0.
    """
    if reading is None or not await limiter.record_operating(portal.name, CALLBACK_START, reading):
        return 0.0  # no figures, or an older answer than one already kept
    wanted = budget_pause_s(reading, budget_s=portal.operating_budget_s, now_s=now_s)
    if wanted <= 0:
        return 0.0
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
