"""Bitrix24's request-rate limit as a pure leaky bucket (the clock is passed in).

Bitrix24 documents the limit as: every request adds 1 to a counter, the counter drains at
`rate` per second, and once it would go over `burst` the portal answers 503
`QUERY_LIMIT_EXCEEDED` (Enterprise: 5/s and 250, all other plans: 2/s and 50).

Refused requests are counted too (`count_refused=True`, the sandbox default). The docs say
"each request adds 1", and counting refusals is the least forgiving reading: a client that
keeps hammering a limited portal stays limited, while a client that backs off recovers at
`rate` per second. This keeps the sandbox at least as strict as the real portal.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Float drift from repeated draining must not turn "exactly full" into "over the top".
_EPSILON = 1e-9


@dataclass(slots=True)
class LeakyBucket:
    """A leaky-bucket counter for one portal.

    Attributes:
        rate: How many units drain per second.
        burst: The most the counter may hold after admitting a request.
        count_refused: Whether a refused request still adds 1 to the counter.
    """

    rate: float
    burst: int
    count_refused: bool = True
    _level: float = field(default=0.0, init=False)
    _updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"rate must be positive, got {self.rate}")
        if self.burst < 1:
            raise ValueError(f"burst must be at least 1, got {self.burst}")

    def level(self, now: float) -> float:
        """Return the counter's value at `now`, after draining.

        Args:
            now: The current time in seconds on a monotonic clock.

        Returns:
            The drained counter value (never negative).
        """
        self._drain(now)
        return self._level

    def try_acquire(self, now: float) -> bool:
        """Count one request at `now` and say whether it is admitted.

        Args:
            now: The current time in seconds on a monotonic clock.

        Returns:
            True if the request fits under `burst`, False if it must be refused.
        """
        self._drain(now)
        admitted = self._level + 1 <= self.burst + _EPSILON
        if admitted or self.count_refused:
            self._level += 1
        return admitted

    def seconds_until_free(self, now: float) -> float:
        """Return how long a client must wait before one more request would be admitted.

        Args:
            now: The current time in seconds on a monotonic clock.

        Returns:
            Seconds to wait; 0.0 if a request would be admitted right now.
        """
        self._drain(now)
        excess = self._level + 1 - self.burst
        return max(0.0, excess / self.rate)

    def _drain(self, now: float) -> None:
        if self._updated is not None and now > self._updated:
            self._level = max(0.0, self._level - (now - self._updated) * self.rate)
        if self._updated is None or now > self._updated:
            self._updated = now
