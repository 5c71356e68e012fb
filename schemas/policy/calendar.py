"""Business hours: weekly wall-clock windows, closed dates and public holidays, all pure.

A line is open at an instant when that instant's local wall-clock time (in the calendar's zone)
falls inside one of the windows of its local weekday and the local date is neither an explicit
closed date nor a public holiday. Because windows are wall-clock times, a daylight-saving change
neither skips nor doubles a window: a window starting in the spring-forward gap opens at the first
instant after the gap, and a window covering the repeated autumn hour is open in both occurrences.
Nothing here reads the clock, the environment or the network; `now` is always passed in. The
windows themselves, and parsing them from the configuration, are :mod:`schemas.policy.hours`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import holidays

from schemas.policy.hours import (
    DAY_KEYS,
    DEFAULT_HOURS,
    CalendarError,
    WeeklyHours,
    Window,
    check_weekly,
    parse_hours,
)

__all__ = [  # with the names now in schemas.policy.hours, still importable from here
    "DAY_KEYS",
    "DEFAULT_HORIZON_DAYS",
    "DEFAULT_HOURS",
    "Calendar",
    "CalendarError",
    "Expired",
    "RunAt",
    "WeeklyHours",
    "Window",
    "default_deadline",
    "earliest_run",
    "next_open",
    "parse_hours",
]

DEFAULT_HORIZON_DAYS = 400

# Zone offsets stay within +-14 h, so every instant whose wall date is D lies in this span.
_SPAN_BEFORE = timedelta(days=1)
_SPAN_AFTER = timedelta(days=2)
# Offsets are sampled this often and bisected where they differ; zones never change twice this fast.
_SAMPLE_S = 6 * 3600
# Local dates whose open intervals a calendar remembers (a few are looked at per decision, the same
# ones for every job of the day): past this many, it starts again.
_MAX_DAYS = 1024

Interval = tuple[datetime, datetime]
"""[lo, hi) in UTC."""


def _utc(instant: datetime, name: str) -> datetime:
    """Convert an aware instant to UTC; a naive one would silently be read as the host's local time."""
    if instant.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime, got {instant.isoformat()}")
    return instant.astimezone(UTC)


@functools.lru_cache(maxsize=1024)
def _holiday_dates(country: str, year: int) -> frozenset[date]:
    """Public holidays of `country` (`CC` or `CC-SUBDIV`) in `year`, cached: building them is slow."""
    code, _, subdivision = country.partition("-")
    return frozenset(holidays.country_holidays(code, subdiv=subdivision or None, years=year))


@dataclass(frozen=True)
class Calendar:
    """When a line may be called: weekly hours in a zone, minus closed dates and public holidays.

    Attributes:
        tz: Zone in which the windows and dates are read.
        weekly: Weekday -> windows; a missing day is closed.
        closed_dates: Extra closed local dates.
        holiday_country: `holidays` country code (`RU`, `US`) or `CC-SUBDIV` (`US-CA`), or None.
    """

    tz: ZoneInfo
    weekly: WeeklyHours
    closed_dates: frozenset[date] = frozenset()
    holiday_country: str | None = None
    # local date -> its open intervals (:func:`_open_intervals`): pure in the fields above, which
    # never change, and asked for by every scheduling decision (the same few days for every job)
    _days: dict[date, tuple[Interval, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        check_weekly(self.weekly)

    def is_closed_day(self, day: date) -> bool:
        """Tell whether a local date is closed as a whole (explicitly or as a public holiday)."""
        if day in self.closed_dates:
            return True
        return self.holiday_country is not None and day in _holiday_dates(self.holiday_country, day.year)

    def is_open(self, at: datetime) -> bool:
        """Tell whether the aware instant `at` falls inside an open window of its local date."""
        local = _utc(at, "at").astimezone(self.tz)
        since_midnight = local.replace(tzinfo=None) - datetime.combine(local.date(), time())
        inside = any(
            timedelta(minutes=start) <= since_midnight < timedelta(minutes=end)
            for start, end in self.weekly.get(local.weekday(), ())
        )
        return inside and not self.is_closed_day(local.date())


def _utc_offset(tz: ZoneInfo, timestamp: int) -> timedelta:
    offset = datetime.fromtimestamp(timestamp, tz).utcoffset()
    assert offset is not None  # a ZoneInfo always knows the offset of an aware instant
    return offset


def _transitions(tz: ZoneInfo, lo: int, hi: int) -> list[int]:
    """POSIX seconds in (lo, hi] at which the UTC offset changes (at most one per differing pair)."""
    if _utc_offset(tz, lo) == _utc_offset(tz, hi):
        return []
    if hi - lo == 1:
        return [hi]
    mid = (lo + hi) // 2
    return _transitions(tz, lo, mid) + _transitions(tz, mid, hi)


def _offset_pieces(
    tz: ZoneInfo, start: datetime, end: datetime
) -> tuple[tuple[datetime, datetime, timedelta], ...]:
    """Split [start, end) (whole UTC seconds) into pieces of constant UTC offset."""
    return _offset_pieces_between(tz, int(start.timestamp()), int(end.timestamp()))


@functools.lru_cache(maxsize=8192)
def _offset_pieces_between(
    tz: ZoneInfo, lo: int, hi: int
) -> tuple[tuple[datetime, datetime, timedelta], ...]:
    # Pure in (zone, range) and the hot path of every scheduling decision (a few days are looked
    # at per decision, the same days for every job): cached. ZoneInfo instances are hashable.
    samples = [*range(lo, hi, _SAMPLE_S), hi]
    bounds = [lo, *(t for a, b in pairwise(samples) for t in _transitions(tz, a, b)), hi]
    return tuple(
        (datetime.fromtimestamp(a, UTC), datetime.fromtimestamp(b, UTC), _utc_offset(tz, a))
        for a, b in pairwise(bounds)
    )


def _open_intervals(cal: Calendar, day: date) -> tuple[Interval, ...]:
    """UTC instant intervals [lo, hi) during which the windows of local date `day` are open
    (remembered by the calendar)."""
    known = cal._days.get(day)
    if known is None:
        if len(cal._days) >= _MAX_DAYS:
            cal._days.clear()
        known = cal._days[day] = tuple(_day_intervals(cal, day))
    return known


def _day_intervals(cal: Calendar, day: date) -> list[Interval]:
    windows = cal.weekly.get(day.weekday(), ())
    if not windows or cal.is_closed_day(day):
        return []
    # Wall-clock times are handled as if they were UTC; subtracting an offset turns them into instants.
    midnight = datetime.combine(day, time(), tzinfo=UTC)
    pieces = _offset_pieces(cal.tz, midnight - _SPAN_BEFORE, midnight + _SPAN_AFTER)
    intervals = []
    for start, end in windows:
        wall_start, wall_end = midnight + timedelta(minutes=start), midnight + timedelta(minutes=end)
        for piece_start, piece_end, offset in pieces:
            lo, hi = max(wall_start - offset, piece_start), min(wall_end - offset, piece_end)
            if lo < hi:
                intervals.append((lo, hi))
    return intervals


def next_open(cal: Calendar, at: datetime, *, horizon_days: int = DEFAULT_HORIZON_DAYS) -> datetime | None:
    """Find the earliest open instant at or after `at`.

    Args:
        cal: The line's calendar.
        at: Aware instant, in any zone.
        horizon_days: How many local dates after the date of `at` to search.

    Returns:
        `at` itself if open, else the first instant a window opens, in `cal.tz`; None if the line
        does not open within the horizon. Compare results in UTC: datetimes sharing a zone compare
        by wall clock, so the two occurrences of a repeated hour would look equal.
    """
    at_utc = _utc(at, "at")
    first_day = at_utc.astimezone(cal.tz).date()
    best: datetime | None = None
    # Start a day early and look one day past the first hit: a clock set back across midnight
    # can make a later wall date begin before an earlier one ends.
    for index in range(-1, horizon_days + 1):
        try:
            day = first_day + timedelta(days=index)
        except OverflowError:
            break
        for lo, hi in _open_intervals(cal, day):
            if hi > at_utc and (best is None or max(lo, at_utc) < best):
                best = max(lo, at_utc)
        if best is not None and day > best.astimezone(cal.tz).date():
            break
    return None if best is None else best.astimezone(cal.tz)


OPEN_UNTIL_HORIZON_DAYS = 8
"""How far :func:`open_until` follows windows that run into each other."""


def open_until(
    cal: Calendar, at: datetime, *, horizon_days: int = OPEN_UNTIL_HORIZON_DAYS
) -> datetime | None:
    """Find when the line closes again, if it is open at `at`.

    Args:
        cal: The line's calendar.
        at: Aware instant, in any zone.
        horizon_days: How many local dates after the date of `at` to follow windows that run into
            each other (a line open around the clock "closes" at the end of the horizon).

    Returns:
        The first instant after `at` at which the line is closed (windows that touch, across midnight
        or a change of offset, count as one), in UTC; None if it is closed at `at`.
    """
    at_utc = _utc(at, "at")
    first_day = at_utc.astimezone(cal.tz).date()
    # the day before, the day and the day after decide almost every case; more days only when the
    # open stretch runs to the end of what was looked at
    for last in (1, horizon_days):
        intervals: list[Interval] = []
        for index in range(-1, last + 1):
            try:
                intervals += _open_intervals(cal, first_day + timedelta(days=index))
            except OverflowError:
                break
        end = _stretch_end(sorted(intervals), at_utc)
        if end is None or end < max(hi for _, hi in intervals):
            return end
    return end


def _stretch_end(intervals: list[Interval], at: datetime) -> datetime | None:
    """The end of the run of touching `intervals` (sorted) that contains `at`, or None."""
    end: datetime | None = None
    for lo, hi in intervals:
        if end is None:
            if lo > at:
                break
            if at < hi:
                end = hi
        elif lo <= end:
            end = max(end, hi)
        else:
            break
    return end


@dataclass(frozen=True)
class RunAt:
    """Decision: run the job at this instant."""

    at: datetime


@dataclass(frozen=True)
class Expired:
    """Decision: the job cannot run before its deadline.

    Attributes:
        reason: Human-readable explanation.
        next_opening: When the line opens next, or None if it never opens within the horizon.
    """

    reason: str
    next_opening: datetime | None


def _start(now: datetime, not_before: datetime | None) -> datetime:
    # Compare in UTC: two datetimes sharing a zone compare by wall clock and ignore `fold`.
    if not_before is None or _utc(not_before, "not_before") <= _utc(now, "now"):
        return now
    return not_before


def earliest_run(
    cal: Calendar,
    *,
    now: datetime,
    not_before: datetime | None,
    deadline: datetime | None,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
) -> RunAt | Expired:
    """Decide when a job may run: the first opening at or after `max(now, not_before)`.

    Args:
        cal: The calendar of the job's line.
        now: The current instant.
        not_before: Earliest moment the producer allows, or None.
        deadline: After this instant the call is pointless, or None.
        horizon_days: How far ahead to look for an opening.

    Returns:
        `RunAt(opening)`, or `Expired` when the line never opens within the horizon or opens only
        at or after the deadline.
    """
    opening = next_open(cal, _start(now, not_before), horizon_days=horizon_days)
    if opening is None:
        return Expired(f"line is never open within {horizon_days} days", None)
    if deadline is not None and opening.astimezone(UTC) >= _utc(deadline, "deadline"):
        relation = "after" if opening.astimezone(UTC) > deadline.astimezone(UTC) else "at"
        return Expired(
            f"next opening {opening.isoformat()} is {relation} the deadline "
            f"{deadline.astimezone(cal.tz).isoformat()}",
            opening,
        )
    return RunAt(opening)


def default_deadline(
    cal: Calendar, *, now: datetime, not_before: datetime | None, default_deadline_s: float
) -> datetime | None:
    """Compute a job's deadline when the producer gave none (contract section 3).

    Args:
        cal: The calendar of the job's line.
        now: The job's arrival.
        not_before: Earliest moment the producer allows, or None.
        default_deadline_s: The portal's `default_deadline`, in seconds.

    Returns:
        The first moment the job may run (`not_before` or `now`, moved to the next opening of its
        line) plus `default_deadline_s`, in `cal.tz`; None if the line never opens.
    """
    opening = next_open(cal, _start(now, not_before))
    if opening is None:
        return None
    # Add elapsed seconds in UTC: aware arithmetic in a zone would add wall-clock time across DST.
    return (opening.astimezone(UTC) + timedelta(seconds=default_deadline_s)).astimezone(cal.tz)
