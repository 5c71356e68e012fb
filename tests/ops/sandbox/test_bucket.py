"""Unit tests of the pure leaky bucket."""

from __future__ import annotations

import pytest

from ops.sandbox.bucket import LeakyBucket


@pytest.mark.parametrize(("rate", "burst"), [(2.0, 50), (5.0, 250), (1.0, 1), (0.5, 3)])
def test_exactly_burst_requests_pass_then_the_next_fails(rate: float, burst: int) -> None:
    """A burst of exactly `burst` simultaneous requests is admitted and the next one is refused."""
    bucket = LeakyBucket(rate=rate, burst=burst)
    assert all(bucket.try_acquire(100.0) for _ in range(burst))
    assert bucket.try_acquire(100.0) is False


@pytest.mark.parametrize(
    ("rate", "wait_s", "admitted"),
    [
        (2.0, 0.5, 1),  # one slot drains every 1/rate seconds
        (2.0, 0.49, 0),
        (2.0, 5.0, 10),
        (5.0, 1.0, 5),
        (0.5, 4.0, 2),
    ],
)
def test_full_bucket_drains_at_rate(rate: float, wait_s: float, admitted: int) -> None:
    """After filling up, a bucket admits `rate * elapsed` more requests, no more."""
    bucket = LeakyBucket(rate=rate, burst=10, count_refused=False)
    for _ in range(10):
        bucket.try_acquire(0.0)
    results = [bucket.try_acquire(wait_s) for _ in range(admitted + 1)]
    assert results == [True] * admitted + [False]


@pytest.mark.parametrize(("count_refused", "admitted_after_one_slot"), [(True, False), (False, True)])
def test_refused_requests_count_when_configured(count_refused: bool, admitted_after_one_slot: bool) -> None:
    """A refused request adds 1 to the counter only when `count_refused` is set (the sandbox default)."""
    bucket = LeakyBucket(rate=1.0, burst=2, count_refused=count_refused)
    assert [bucket.try_acquire(0.0) for _ in range(3)] == [True, True, False]
    assert bucket.try_acquire(1.0) is admitted_after_one_slot


def test_steady_rate_never_hits_the_limit() -> None:
    """Requests spaced exactly 1/rate apart are never refused, even past many bucket sizes."""
    bucket = LeakyBucket(rate=2.0, burst=3)
    assert all(bucket.try_acquire(i * 0.5) for i in range(1000))


@pytest.mark.parametrize(
    ("fill", "now", "expected"),
    [(0, 0.0, 0.0), (4, 0.0, 0.5), (4, 0.5, 0.0), (6, 0.0, 1.5)],
)
def test_seconds_until_free(fill: int, now: float, expected: float) -> None:
    """`seconds_until_free` says how long until one more request fits (rate 2, burst 4)."""
    bucket = LeakyBucket(rate=2.0, burst=4)
    for _ in range(fill):
        bucket.try_acquire(0.0)
    assert bucket.seconds_until_free(now) == pytest.approx(expected)


def test_clock_going_backwards_does_not_refill() -> None:
    """An earlier `now` than the last one neither drains nor breaks the counter."""
    bucket = LeakyBucket(rate=1.0, burst=1)
    assert bucket.try_acquire(10.0)
    assert bucket.try_acquire(5.0) is False
    assert bucket.level(5.0) == pytest.approx(2.0)


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0)])
def test_invalid_parameters_are_rejected(rate: float, burst: int) -> None:
    """A non-positive rate or a burst below 1 is a configuration error."""
    with pytest.raises(ValueError, match="must"):
        LeakyBucket(rate=rate, burst=burst)
