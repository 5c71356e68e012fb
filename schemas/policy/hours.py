"""Weekly business hours as configured: the ``[hours]`` table parsed into checked windows.

A day's hours are comma-separated ``HH:MM-HH:MM`` wall-clock windows (``""`` closed, ``00:00-24:00``
the whole day). Parsing names the table, the day and the bad value in every error; which instants
these windows make open is :mod:`schemas.policy.calendar`'s concern. Pure: no clock, no environment.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from itertools import pairwise
from types import MappingProxyType

Window = tuple[int, int]
"""(start_minute, end_minute) of local wall-clock time, 0 <= start < end <= 1440."""
WeeklyHours = Mapping[int, tuple[Window, ...]]
"""Weekday (0 = Monday .. 6 = Sunday) -> sorted, non-overlapping windows; a missing day is closed."""

DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 1440
DEFAULT_HOURS: WeeklyHours = MappingProxyType({day: ((9 * 60, 21 * 60),) for day in range(7)})
"""Every day 09:00-21:00: used when a portal gives no [hours] table."""

_TIME = re.compile(r"(\d{1,2}):(\d{2})")


class CalendarError(ValueError):
    """A business-hours specification is invalid; the message names where and the bad value."""


def format_window(window: Window) -> str:
    """Write a window the way it is configured.

    Args:
        window: (start_minute, end_minute).

    Returns:
        For example `09:00-18:00`.
    """
    return "-".join(f"{minute // 60:02d}:{minute % 60:02d}" for minute in window)


def _parse_minute(text: str, *, where: str, value: str) -> int:
    match = _TIME.fullmatch(text.strip())
    hours, minutes = (int(match[1]), int(match[2])) if match else (-1, -1)
    if not match or minutes > 59 or hours > 24 or (hours == 24 and minutes != 0):
        raise CalendarError(
            f'{where}: bad time "{text.strip()}" in "{value}" (expected HH:MM, at most 24:00)'
        )
    return hours * 60 + minutes


def _parse_day(value: str, *, where: str) -> tuple[Window, ...]:
    if not value.strip():
        return ()
    windows: list[Window] = []
    for part in value.split(","):
        start_text, dash, end_text = part.partition("-")
        if not dash:
            raise CalendarError(f'{where}: bad window "{part.strip()}" in "{value}" (expected HH:MM-HH:MM)')
        start = _parse_minute(start_text, where=where, value=value)
        end = _parse_minute(end_text, where=where, value=value)
        if end <= start:
            raise CalendarError(f'{where}: window "{part.strip()}" in "{value}" must end after it starts')
        windows.append((start, end))
    windows.sort()
    for first, second in pairwise(windows):
        if second[0] < first[1]:
            raise CalendarError(
                f'{where}: windows {format_window(first)} and {format_window(second)} overlap in "{value}"'
            )
    return tuple(windows)


def parse_hours(spec: Mapping[str, object], *, where: str) -> WeeklyHours:
    """Parse an [hours] table such as `{"mon": "09:00-13:00,14:00-18:00", "sat": ""}`.

    Args:
        spec: Day key (`mon` .. `sun`) -> comma-separated `HH:MM-HH:MM` windows; `""` is closed and
            `00:00-24:00` is the whole day. Days left out are closed.
        where: Dotted path of the table, e.g. `portals.acme.hours`, used in error messages.

    Returns:
        Read-only weekly hours, holding only the days that have windows.

    Raises:
        CalendarError: An unknown day key, a bad time, a window that ends before it starts or
            overlapping windows; the message names `where`, the day and the bad value.
    """
    days: dict[int, tuple[Window, ...]] = {}
    for key, value in spec.items():
        if key not in DAY_KEYS:
            raise CalendarError(f'{where}: unknown day "{key}" (expected one of {", ".join(DAY_KEYS)})')
        if not isinstance(value, str):
            raise CalendarError(f'{where}.{key}: must be a string like "09:00-18:00", got {value!r}')
        windows = _parse_day(value, where=f"{where}.{key}")
        if windows:
            days[DAY_KEYS.index(key)] = windows
    return MappingProxyType(dict(sorted(days.items())))


def check_weekly(weekly: WeeklyHours) -> None:
    """Fail unless every weekday is 0..6 with sorted, non-overlapping windows inside one day.

    Raises:
        CalendarError: The first bad day, with its windows.
    """
    for day, windows in weekly.items():
        valid = all(0 <= start < end <= MINUTES_PER_DAY for start, end in windows) and all(
            first[1] <= second[0] for first, second in pairwise(windows)
        )
        if day not in range(7) or not valid:
            raise CalendarError(f"weekly hours: day {day!r} has invalid windows {windows!r}")
