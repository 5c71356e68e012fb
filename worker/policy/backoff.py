"""Retry delays: exponential backoff with full jitter. Pure; randomness is a parameter."""

from __future__ import annotations


def backoff_delay_s(attempt: int, *, base_s: float = 5.0, cap_s: float = 600.0, jitter: float = 1.0) -> float:
    """Delay before the attempt after ``attempt`` (1-based), "full jitter" style.

    Args:
        attempt: the attempt that just failed, starting at 1.
        base_s: the delay ceiling after the first failure.
        cap_s: the largest ceiling.
        jitter: a number in [0, 1] drawn by the caller (``random.random()``); 1 gives the ceiling.

    Returns:
        ``jitter * min(cap_s, base_s * 2 ** (attempt - 1))`` seconds.
    """
    if attempt < 1:
        raise ValueError("attempt starts at 1")
    ceiling = min(cap_s, base_s * float(2 ** min(attempt - 1, 32)))
    return max(0.0, min(1.0, jitter)) * ceiling
