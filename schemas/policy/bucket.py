"""The leaky bucket as both producers and workers reserve from it: parameters and the GCRA step.

The GCRA step itself is Lua (``schemas/store/lua/_gcra.lua``), shared by the admission script (a job
due on arrival takes its slot there, in the same round trip) and by the worker's limiter
(:mod:`worker.jobs.ratelimit`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Bucket:
    """A leaky bucket: ``burst`` requests at once, then ``rate`` per second."""

    rate: float
    burst: int

    @property
    def interval_ms(self) -> float:
        """Milliseconds between two requests at the steady rate."""
        return 1000.0 / self.rate

    @property
    def tolerance_ms(self) -> float:
        """How far ahead of the steady rate a burst may run."""
        return (self.burst - 1) * self.interval_ms


def pacing_bucket(rate: float, burst: int) -> Bucket:
    """The bucket callq paces to: Bitrix24's, less one request of headroom for network jitter.

    Two requests reserved one interval apart can arrive closer together than that; with the
    bucket exactly full, the second would be refused. One request of headroom absorbs it.
    """
    return Bucket(rate=rate, burst=max(burst - 1, 1))


PRECISE_WAIT_S = 0.6
"""A slot at most this far away is waited for in the worker; farther, the job is put back."""

EARLY_WAKE_S = 0.4
"""A put-back job wakes this long before its slot (more than arq's 0.25 s poll), to start on time."""
