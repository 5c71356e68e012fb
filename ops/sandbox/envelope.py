"""The `time` object of a Bitrix24 success answer, and the per-method `operating` meter.

Bitrix24 counts each method's execution time over the last 10 minutes (`operating`) and says
when the oldest part of it is released (`operating_reset_at`: 10 minutes after the first call
counted in that window). The sandbox keeps the same bookkeeping with its own, tiny, processing
times (a delay fault counts as processing time, like a slow real call would).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

OPERATING_WINDOW_S = 600.0


@dataclass(slots=True)
class OperatingMeter:
    """Execution time of one method on one portal over the last `OPERATING_WINDOW_S` seconds."""

    _entries: deque[tuple[float, float]] = field(default_factory=deque)

    def add(self, started_wall: float, duration_s: float) -> tuple[float, int]:
        """Count one execution and return `(operating, operating_reset_at)`.

        Args:
            started_wall: Unix time when the execution started.
            duration_s: How long it took.

        Returns:
            The summed execution time in the window and the unix time its oldest entry leaves.
        """
        while self._entries and self._entries[0][0] <= started_wall - OPERATING_WINDOW_S:
            self._entries.popleft()
        self._entries.append((started_wall, duration_s))
        operating = sum(duration for _, duration in self._entries)
        return operating, int(self._entries[0][0] + OPERATING_WINDOW_S)


def _iso(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, tz=UTC).isoformat(timespec="seconds")


def time_envelope(start: float, finish: float, operating: float, operating_reset_at: int) -> dict[str, Any]:
    """Build the `time` object of a success answer (field names as in Bitrix24's docs).

    Args:
        start: Unix time the request arrived.
        finish: Unix time the answer is sent.
        operating: The method's accumulated execution time in the window, seconds.
        operating_reset_at: Unix time when part of that time is released.

    Returns:
        `{start, finish, duration, processing, date_start, date_finish, operating_reset_at,
        operating}`.
    """
    duration = max(0.0, finish - start)
    return {
        "start": start,
        "finish": finish,
        "duration": duration,
        "processing": duration,
        "date_start": _iso(start),
        "date_finish": _iso(finish),
        "operating_reset_at": operating_reset_at,
        "operating": operating,
    }
