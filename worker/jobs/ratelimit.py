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
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from redis.asyncio import Redis

from schemas.policy.bucket import Bucket
from schemas.policy.redact import redact_text
from schemas.store.keys import Keys
from schemas.store.ledger import WriteRetry, send_once
from schemas.store.scripts import Scripts


class RateLimiter:
    """Reservations against the shared buckets of one deployment.

    Args:
        redis: client.
        keys: key names under the deployment prefix.
        base_pause_s: first pause after a ``QUERY_LIMIT_EXCEEDED``; doubles on each further one.
        max_pause_s: longest pause.
        method_pause_s: first pause after ``OPERATION_TIME_LIMIT``.
        retry: what to do when Redis refuses a write for being full (the worker: try until it takes it).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        keys: Keys,
        base_pause_s: float = 1.0,
        max_pause_s: float = 60.0,
        method_pause_s: float = 60.0,
        retry: WriteRetry = send_once,
    ) -> None:
        self.redis = redis
        self.retry = retry
        self.keys = keys
        self.method_pause_ms = method_pause_s * 1000
        self.base_pause_ms = base_pause_s * 1000
        self.max_pause_ms = max_pause_s * 1000
        self.scripts = Scripts(redis)

    async def halt(self, portal: str, *, code: str, description: str, seconds: float) -> None:
        """Halt every request to ``portal`` for ``seconds`` (credentials refused, manual block).

        The reason is shown by ``callq status`` and the HTTP API: its text is masked before it is stored.
        """
        reason = {
            "code": redact_text(code),
            "description": redact_text(description)[:300],
            "since": datetime.now(UTC).isoformat(),
        }
        key, value, px = self.keys.portal_halt(portal), json.dumps(reason), int(seconds * 1000)
        await self.retry(lambda: self.redis.set(key, value, px=px), where="portal halt")

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

    async def pause(self, portal: str, bucket: Bucket, *, method_block: bool = False) -> float:
        """Pause the portal for every worker after Bitrix24 refused a request for its limits.

        Args:
            portal: the portal.
            bucket: its bucket (the pause assumes it full afterwards).
            method_block: ``OPERATION_TIME_LIMIT``: callback.start is blocked until a minute bucket
                of its execution time drops out, so the pause starts at a minute. callq calls no
                other method on the portal, so pausing the portal's callbacks pauses the method.

        Returns:
            The pause in seconds (doubling with each refusal in a row, capped).
        """
        k = self.keys
        base_ms = max(self.base_pause_ms, 2 * bucket.interval_ms)
        if method_block:
            base_ms = max(base_ms, self.method_pause_ms)
        keys = [k.rate_bucket(portal), k.portal_pause(portal), k.portal_strikes(portal)]
        args = [bucket.tolerance_ms, base_ms, max(self.max_pause_ms, base_ms)]
        pause_ms = await self.retry(lambda: self.scripts.pause(keys=keys, args=args), where="portal pause")
        return float(pause_ms) / 1000
