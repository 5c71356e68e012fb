"""The shared buckets in Redis: reservations, pauses, line pacing (real Redis, no worker)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from redis.asyncio import Redis

from schemas.policy.bucket import Bucket
from schemas.store.keys import Keys
from worker.jobs.ratelimit import RateLimiter


@pytest.fixture
def limiter(redis: Redis, prefix: str) -> RateLimiter:
    """A limiter under this test's prefix."""
    return RateLimiter(redis, keys=Keys(prefix), base_pause_s=1.0, max_pause_s=8.0)


async def test_burst_then_steady_rate(limiter: RateLimiter) -> None:
    """`burst` reservations are immediate; after them each waits one more interval."""
    bucket = Bucket(rate=2.0, burst=5)
    delays = [await limiter.reserve_portal("p", bucket) for _ in range(9)]
    assert delays[:5] == [0.0] * 5
    for n, delay in enumerate(delays[5:], start=1):
        assert delay == pytest.approx(0.5 * n, abs=0.05)


async def test_concurrent_reservations_never_share_a_slot(limiter: RateLimiter) -> None:
    """Many reservations at once (as from many workers) get distinct slots one interval apart."""
    bucket = Bucket(rate=10.0, burst=1)
    delays = sorted(await asyncio.gather(*(limiter.reserve_portal("p", bucket) for _ in range(50))))
    gaps = [b - a for a, b in itertools.pairwise(delays)]
    assert min(gaps) == pytest.approx(0.1, abs=0.01)


async def test_portals_have_separate_buckets(limiter: RateLimiter) -> None:
    """A full bucket on one portal does not delay another."""
    bucket = Bucket(rate=1.0, burst=1)
    await limiter.reserve_portal("busy", bucket)
    assert await limiter.reserve_portal("busy", bucket) > 0.9
    assert await limiter.reserve_portal("idle", bucket) == 0.0


async def test_pause_holds_the_portal_and_doubles(limiter: RateLimiter) -> None:
    """A pause delays every reservation past it, assumes the bucket full, and doubles when repeated."""
    bucket = Bucket(rate=2.0, burst=50)
    first = await limiter.pause("p", bucket)
    assert first == pytest.approx(1.0)
    delay = await limiter.reserve_portal("p", bucket)
    assert delay == pytest.approx(1.0, abs=0.05)
    second_delay = await limiter.reserve_portal("p", bucket)
    assert second_delay == pytest.approx(1.5, abs=0.05), "after a pause: steady rate, no burst"
    assert await limiter.pause("p", bucket) == pytest.approx(1.0, abs=0.05), (
        "refused during the pause: same pause"
    )


async def test_pause_until_keeps_the_longer_pause(limiter: RateLimiter) -> None:
    """An execution-time pause lasts as asked, and never shortens a longer pause already on."""
    assert await limiter.pause_until("p", 30.0) == pytest.approx(30.0)
    assert await limiter.pause_until("p", 5.0) == pytest.approx(30.0, abs=0.1)


async def test_line_pacing(limiter: RateLimiter) -> None:
    """Starts on one line are `min_interval` apart; another line is not held."""
    assert await limiter.reserve_line("p", "l1", 20) == 0.0
    assert await limiter.reserve_line("p", "l1", 20) == pytest.approx(20.0, abs=0.05)
    assert await limiter.reserve_line("p", "l2", 20) == 0.0
