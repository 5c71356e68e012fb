"""When to ask ``voximplant.statistic.get`` again about a call that has not ended yet. Pure.

Statistics rows appear only once a call ends, and a callback rings the manager first, reads them a
text, then dials the client: the first look comes after ``first_poll`` seconds, and each later one
waits twice as long as the one before, up to ``max_poll``; after ``horizon`` seconds without an end
the call result is ``unknown`` (and never redialled).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FollowTiming:
    """How a call's end is awaited.

    Attributes:
        first_poll_s: wait before the first statistics request.
        max_poll_s: the longest wait between two requests.
        horizon_s: give up this long after the call was placed (result ``unknown``).
    """

    first_poll_s: float = 20.0
    max_poll_s: float = 300.0
    horizon_s: float = 3600.0


def poll_delay_s(timing: FollowTiming, *, polls_done: int) -> float:
    """Seconds before the next statistics request, after ``polls_done`` that found no row.

    Args:
        timing: the portal's follow-up timing.
        polls_done: requests already made for the current call (0 before the first).

    Returns:
        ``first_poll_s``, then doubling, capped at ``max_poll_s``.
    """
    if polls_done <= 0:
        return timing.first_poll_s
    return min(timing.first_poll_s * 2.0 ** min(polls_done, 30), timing.max_poll_s)


def past_horizon(timing: FollowTiming, *, placed_ms: int, now_ms: int) -> bool:
    """Whether a call placed at ``placed_ms`` has been awaited for the whole horizon at ``now_ms``."""
    return now_ms - placed_ms >= timing.horizon_s * 1000
