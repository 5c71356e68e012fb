"""Bitrix24's per-method execution-time limit ("operating"): when to pause a method. Pure.

Bitrix24 sums each method's execution time over the last 10 minutes and refuses the method with
``OPERATION_TIME_LIMIT`` (HTTP 429) once the sum exceeds the portal's limit (480 s by its REST
limits page). Every successful answer carries the sum so far (``time.operating``) and when its
oldest part is released (``time.operating_reset_at``: 10 minutes after the first call counted in
that minute). So callq pauses the method a little *before* the sum reaches the budget, until the
oldest part is released, rather than be refused; and when refused anyway, it waits until that
moment, not a fixed minute.

The margin: callq pauses once ``operating`` reaches 90 % of the budget (48 s of 480). Requests
already in flight when the pause begins still add their time; at the 2 requests/s of a standard
plan and about 1.7 s per callback (Bitrix24's example), that is a handful of requests, well inside
48 s. Times are Bitrix24's unix times; one second is added to each wait for the clocks' skew.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

MARGIN_SHARE = 0.1
"""Pause once ``operating`` reaches this share short of the budget."""

SKEW_S = 1.0
"""Added to each wait until ``operating_reset_at``: Bitrix24's clock and ours may differ a little."""

NEXT_BUCKET_S = 60.0
"""Without a usable ``operating_reset_at``, wait this long: the limit is counted in one-minute buckets,
so the next one is released within a minute."""

WINDOW_S = 600.0
"""Bitrix24 sums execution time over the last 10 minutes: the oldest part is released within them. An
``operating_reset_at`` further ahead than this (and the skew) is not believed (milliseconds instead
of seconds, a broken proxy): the wait is then :data:`NEXT_BUCKET_S`."""


@dataclass(frozen=True)
class OperatingReading:
    """A method's execution-time figures from one answer.

    Attributes:
        operating_s: the method's summed execution time over the last 10 minutes.
        reset_at_s: unix time its oldest part is released (``operating_reset_at``).
        finish_s: unix time of the answer (``time.finish``), to keep the newest of concurrent readings.
    """

    operating_s: float
    reset_at_s: float
    finish_s: float

    @classmethod
    def of(cls, timing: Any) -> OperatingReading | None:
        """Read a ``time`` object of a Bitrix24 answer; None if it lacks the figures."""
        if not isinstance(timing, Mapping):
            return None
        operating, reset_at = timing.get("operating"), timing.get("operating_reset_at")
        finish = timing.get("finish", timing.get("start"))
        if not _number(operating) or not _number(reset_at):
            return None
        return cls(float(operating), float(reset_at), float(finish) if _number(finish) else 0.0)

    def to_dict(self) -> dict[str, float]:
        """The stored form."""
        return {"operating": self.operating_s, "reset_at": self.reset_at_s, "finish": self.finish_s}

    @classmethod
    def from_dict(cls, data: Any) -> OperatingReading | None:
        """Read the stored form back; None if it is not one."""
        if not isinstance(data, Mapping) or not all(
            _number(data.get(key)) for key in ("operating", "reset_at", "finish")
        ):
            return None
        return cls(float(data["operating"]), float(data["reset_at"]), float(data["finish"]))


def budget_pause_s(reading: OperatingReading, *, budget_s: float, now_s: float) -> float:
    """How long to pause the method after an answer, so that it never reaches its budget.

    Args:
        reading: the figures of the answer.
        budget_s: the portal's ``operating_budget``.
        now_s: unix time now.

    Returns:
        0 while the sum is below the budget less the margin (or its oldest part is already
        released: the next answer tells the new sum); else the seconds until that part is released.
    """
    if reading.operating_s < budget_s * (1 - MARGIN_SHARE) or reading.reset_at_s <= now_s:
        return 0.0
    return _until_reset_s(reading, now_s=now_s)


def refusal_wait_s(reading: OperatingReading | None, *, now_s: float) -> float:
    """How long to pause the method after Bitrix24 refused it with ``OPERATION_TIME_LIMIT``.

    Args:
        reading: the figures of the refusal, else of the last answer before it; None if unknown.
        now_s: unix time now.

    Returns:
        Until ``operating_reset_at`` if it is still ahead (and believable); else a minute (the next
        bucket).
    """
    if reading is not None and reading.reset_at_s > now_s:
        return _until_reset_s(reading, now_s=now_s)
    return NEXT_BUCKET_S


def _until_reset_s(reading: OperatingReading, *, now_s: float) -> float:
    """Seconds until ``operating_reset_at`` (ahead of ``now_s``), or the next bucket's minute if it is
    further ahead than the 10-minute window allows."""
    wait_s = reading.reset_at_s - now_s + SKEW_S
    return wait_s if wait_s <= WINDOW_S + SKEW_S else NEXT_BUCKET_S


def _number(value: object) -> TypeGuard[int | float]:
    """A finite int or float (not a bool): what a figure of Bitrix24's ``time`` object may be."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
