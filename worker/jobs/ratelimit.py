"""Per-portal leaky bucket and per-line pacing, shared by every worker process through Redis.

Bitrix24 counts requests per portal in a leaky bucket (``burst`` deep, draining ``rate`` per
second). callq keeps the same bucket in Redis as a GCRA "theoretical arrival time" and hands out
*reservations*: a job asks for the next free slot, and if that slot is in the future the job is put
back to run at it, holding the slot, instead of sleeping in a worker. One round trip per job, no
thundering herd, and slots are handed out in arrival order. Time is Redis's own (``TIME``), so
workers on machines with skewed clocks still share one bucket.

When Bitrix24 answers ``QUERY_LIMIT_EXCEEDED`` anyway (another application on the same portal,
say), :meth:`RateLimiter.pause` stops the whole portal for every worker and assumes the bucket is
full afterwards, so it resumes at the steady rate rather than in a burst.

The same keys carry callback.start's execution-time budget (:mod:`worker.policy.operating`): each
answer's reading is kept (:meth:`RateLimiter.record_operating`) and :meth:`RateLimiter.pause_until`
pauses the portal's callbacks until the budget frees up; and a portal refused as a whole is halted
once (:meth:`RateLimiter.halt`).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, cast

from redis.asyncio import Redis

from schemas.policy.bucket import Bucket
from schemas.policy.redact import redact_text
from schemas.store.keys import Keys
from schemas.store.ledger import WriteRetry, send_once
from schemas.store.scripts import Scripts
from worker.policy.operating import OperatingReading

OPERATING_TTL_MS = 660_000
"""A reading is kept 11 minutes: older than Bitrix24's 10-minute window, it says nothing."""

PauseReason = Literal["operating"]


@dataclass(frozen=True)
class Halt:
    """A portal's halt as one refusal found it.

    Attributes:
        new: this refusal halted the portal (the others that come back meanwhile join its halt).
        remaining_s: how long the halt still lasts.
    """

    new: bool
    remaining_s: float


class RateLimiter:
    """Reservations against the shared buckets of one deployment.

    Args:
        redis: client.
        keys: key names under the deployment prefix.
        base_pause_s: first pause after a ``QUERY_LIMIT_EXCEEDED``; doubles on each further one.
        max_pause_s: longest pause.
        retry: what to do when Redis refuses a write for being full (the worker: try until it takes it).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        keys: Keys,
        base_pause_s: float = 1.0,
        max_pause_s: float = 60.0,
        retry: WriteRetry = send_once,
    ) -> None:
        self.redis = redis
        self.retry = retry
        self.keys = keys
        self.base_pause_ms = base_pause_s * 1000
        self.max_pause_ms = max_pause_s * 1000
        self.scripts = Scripts(redis)

    async def halt(self, portal: str, *, code: str, description: str, seconds: float) -> Halt:
        """Halt every request to ``portal`` for ``seconds`` (refused as a whole: credentials, scope,
        permission, a block), unless it is halted already: requests sent before the halt began come
        back refused too, and join it rather than start another.

        The reason is shown by ``callq status`` and the HTTP API: its text is masked before it is stored.
        """
        reason = {
            "code": redact_text(code),
            "description": redact_text(description)[:300],
            "since": datetime.now(UTC).isoformat(),
        }
        key, value, px = self.keys.portal_halt(portal), json.dumps(reason), max(int(seconds * 1000), 1)
        if await self.retry(lambda: self.redis.set(key, value, px=px, nx=True), where="portal halt"):
            return Halt(new=True, remaining_s=px / 1000)
        remaining_ms = await self.redis.pttl(key)
        if remaining_ms <= 0:  # lifted (`callq resume`) in between: nothing to wait for
            return Halt(new=False, remaining_s=0.0)
        return Halt(new=False, remaining_s=remaining_ms / 1000)

    async def reserve_portal(self, portal: str, bucket: Bucket) -> float:
        """Reserve the portal's next request slot; returns seconds until it (0 if now)."""
        keys = [self.keys.rate_bucket(portal), self.keys.portal_pause(portal)]
        args = [bucket.interval_ms, bucket.tolerance_ms]
        delay_ms = await self.retry(lambda: self.scripts.reserve(keys=keys, args=args), where="rate slot")
        return max(float(delay_ms), 0.0) / 1000

    async def reserve_line(self, portal: str, line: str, min_interval_s: float) -> float:
        """Reserve the line's next start (one per ``min_interval_s``); returns seconds until it."""
        keys = [self.keys.line_pacing(portal, line), self.keys.portal_pause(portal)]
        args = [min_interval_s * 1000, 0]
        delay_ms = await self.retry(lambda: self.scripts.reserve(keys=keys, args=args), where="line slot")
        return max(float(delay_ms), 0.0) / 1000

    async def pause(self, portal: str, bucket: Bucket) -> float:
        """Pause the portal for every worker after Bitrix24 refused a request for its rate limit.

        Args:
            portal: the portal.
            bucket: its bucket (the pause assumes it full afterwards).

        Returns:
            The pause in seconds (doubling with each refusal in a row, capped).
        """
        k = self.keys
        base_ms = max(self.base_pause_ms, 2 * bucket.interval_ms)
        keys = [k.rate_bucket(portal), k.portal_pause(portal), k.portal_strikes(portal)]
        args = [bucket.tolerance_ms, base_ms, max(self.max_pause_ms, base_ms)]
        pause_ms = await self.retry(lambda: self.scripts.pause(keys=keys, args=args), where="portal pause")
        return float(pause_ms) / 1000

    async def pause_until(self, portal: str, seconds: float, *, reason: PauseReason = "operating") -> float:
        """Pause the portal's callbacks for ``seconds`` (unless a longer pause is on): callq calls
        ``voximplant.callback.start`` through this pause, so pausing the portal's callbacks pauses the
        method. Returns the pause in force, in seconds."""
        keys = [self.keys.portal_pause(portal)]
        args: list[str | int] = [reason, max(int(seconds * 1000), 1)]
        pause_ms = await self.retry(
            lambda: self.scripts.pause_until(keys=keys, args=args), where="portal pause"
        )
        return float(pause_ms) / 1000

    async def record_operating(self, portal: str, method: str, reading: OperatingReading) -> bool:
        """Keep ``method``'s execution-time reading for every worker; True if it is the newest one."""
        keys = [self.keys.operating(portal)]
        args: list[str | int] = [
            method,
            json.dumps(reading.to_dict()),
            int(reading.finish_s * 1000),
            OPERATING_TTL_MS,
        ]
        newest = await self.retry(
            lambda: self.scripts.operating(keys=keys, args=args), where="operating reading"
        )
        return bool(newest)

    async def last_operating(self, portal: str, method: str) -> OperatingReading | None:
        """The newest execution-time reading of ``method`` any worker kept, or None."""
        raw = await cast(Awaitable[bytes | None], self.redis.hget(self.keys.operating(portal), method))
        try:
            return OperatingReading.from_dict(json.loads(raw)) if raw else None
        except ValueError:
            return None
