"""The wall clock: what every part of callq reads for "now", passed in where it matters (tests fix it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]
"""Returns the current aware time."""


def utcnow() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)
