"""The `time` object of a Bitrix24 success answer, and the per-method `operating` meter.

Bitrix24 counts each method's execution time over the last 10 minutes (`operating`) and says
when the oldest part of it is released (`operating_reset_at`: 10 minutes after the first call
counted in that window). The sandbox keeps the same bookkeeping with its own, tiny, processing
times (a delay fault counts as processing time, like a slow real call would), or with a portal's
`processing_s` per call; a portal's `operating_window_s` shortens the window for tests.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

OPERATING_WINDOW_S = 600.0


@dataclass(slots=True)
class OperatingMeter:
    """Execution time of one method on one portal over the last `window_s` seconds."""

    window_s: float = OPERATING_WINDOW_S
    _entries: deque[tuple[float, float]] = field(default_factory=deque)

    def add(self, started_wall: float, duration_s: float) -> tuple[float, int]:
        """Count one execution and return `(operating, operating_reset_at)`.

        Args:
            started_wall: Unix time when the execution started.
            duration_s: How long it took.

        Returns:
            The summed execution time in the window and the unix time its oldest entry leaves.
        """
        self._prune(started_wall)
        self._entries.append((started_wall, duration_s))
        return self.total(started_wall)

    def total(self, now_wall: float) -> tuple[float, int]:
        """Return `(operating, operating_reset_at)` at `now_wall`, without counting anything."""
        self._prune(now_wall)
        operating = sum(duration for _, duration in self._entries)
        oldest = self._entries[0][0] if self._entries else now_wall
        return operating, int(oldest + self.window_s)

    def _prune(self, now_wall: float) -> None:
        while self._entries and self._entries[0][0] <= now_wall - self.window_s:
            self._entries.popleft()


def _iso(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, tz=UTC).isoformat(timespec="seconds")


def time_envelope(
    start: float, finish: float, operating: float, operating_reset_at: int, *, processing: float | None = None
) -> dict[str, Any]:
    """Build the `time` object of a success answer (field names as in Bitrix24's docs).

    Args:
        start: Unix time the request arrived.
        finish: Unix time the answer is sent.
        operating: The method's accumulated execution time in the window, seconds.
        operating_reset_at: Unix time when part of that time is released.
        processing: The execution time counted for this call (default: `finish - start`).

    Returns:
        `{start, finish, duration, processing, date_start, date_finish, operating_reset_at,
        operating}`.
    """
    duration = max(0.0, finish - start)
    return {
        "start": start,
        "finish": finish,
        "duration": duration,
        "processing": duration if processing is None else processing,
        "date_start": _iso(start),
        "date_finish": _iso(finish),
        "operating_reset_at": operating_reset_at,
        "operating": operating,
    }
