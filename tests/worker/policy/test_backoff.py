"""Backoff policy: exponential ceiling, full jitter, capped. Pure."""

from __future__ import annotations

import pytest

from worker.policy.backoff import backoff_delay_s


@pytest.mark.parametrize(
    ("attempt", "jitter", "expected"),
    [
        (1, 1.0, 5.0),
        (2, 1.0, 10.0),
        (3, 1.0, 20.0),
        (3, 0.5, 10.0),
        (3, 0.0, 0.0),
        (20, 1.0, 600.0),
        (500, 1.0, 600.0),
    ],
)
def test_backoff_delay(attempt: int, jitter: float, expected: float) -> None:
    """The delay is jitter times min(cap, base * 2^(attempt-1))."""
    assert backoff_delay_s(attempt, jitter=jitter) == pytest.approx(expected)


def test_backoff_rejects_attempt_zero() -> None:
    """Attempts count from one."""
    with pytest.raises(ValueError, match="starts at 1"):
        backoff_delay_s(0, jitter=1.0)
