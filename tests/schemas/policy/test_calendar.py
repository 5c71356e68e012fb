"""Tests for schemas.policy.calendar: parsing hours, opening times, holidays, DST and run decisions."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.policy.calendar import (
    DAY_KEYS,
    DEFAULT_HOURS,
    Calendar,
    CalendarError,
    Expired,
    RunAt,
    WeeklyHours,
    Window,
    default_deadline,
    earliest_run,
    next_open,
    open_until,
    parse_hours,
)

MSK = ZoneInfo("Europe/Moscow")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def utc(instant: datetime | None) -> datetime:
    """The same instant in UTC, for comparisons and arithmetic that must not ignore `fold`."""
    assert instant is not None
    return instant.astimezone(UTC)


def hours(**days: str) -> WeeklyHours:
    """Parse an [hours] table given as keyword arguments."""
    return parse_hours(days, where="test.hours")


def every_day(spec: str) -> WeeklyHours:
    """Weekly hours with the same windows on all seven days."""
    return parse_hours(dict.fromkeys(DAY_KEYS, spec), where="test.hours")


WEEKDAYS = hours(**dict.fromkeys(DAY_KEYS[:5], "09:00-13:00,14:00-18:00"), sat="10:00-14:00")
# Moscow office: lunch break, short Saturday, Sunday closed, Russian holidays, one extra closed day.
OFFICE = Calendar(MSK, WEEKDAYS, closed_dates=frozenset({date(2026, 11, 25)}), holiday_country="RU")
MON_FRI = Calendar(MSK, hours(**dict.fromkeys(DAY_KEYS[:5], "09:00-18:00")), holiday_country="RU")
ALWAYS = Calendar(ZoneInfo("UTC"), every_day("00:00-24:00"))
NEVER = Calendar(ZoneInfo("UTC"), hours())


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"mon": "09:00-18:00"}, {0: ((540, 1080),)}),
        ({"tue": "09:00-13:00,14:00-18:00"}, {1: ((540, 780), (840, 1080))}),
        ({"wed": " 14:00-18:00 , 09:00-13:00 "}, {2: ((540, 780), (840, 1080))}),
        ({"thu": "09:00-13:00,13:00-18:00"}, {3: ((540, 780), (780, 1080))}),
        ({"fri": "9:30-10:00"}, {4: ((570, 600),)}),
        ({"sat": ""}, {}),
        ({"sun": "00:00-24:00"}, {6: ((0, 1440),)}),
        ({}, {}),
    ],
)
def test_parse_hours(spec: dict[str, str], expected: dict[int, tuple[Window, ...]]) -> None:
    """Day keys become weekday numbers with sorted minute windows; empty days are left out."""
    assert dict(parse_hours(spec, where="portals.acme.hours")) == expected


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"monday": "09:00-18:00"}, 'portals.acme.hours: unknown day "monday"'),
        ({"tue": "9-18"}, 'portals.acme.hours.tue: bad time "9" in "9-18"'),
        ({"tue": "25:00-26:00"}, 'portals.acme.hours.tue: bad time "25:00"'),
        ({"tue": "09:60-10:00"}, 'portals.acme.hours.tue: bad time "09:60"'),
        ({"tue": "22:00-24:30"}, 'portals.acme.hours.tue: bad time "24:30"'),
        ({"tue": "18:00-09:00"}, 'portals.acme.hours.tue: window "18:00-09:00" in "18:00-09:00" must end'),
        ({"tue": "10:00-10:00"}, 'window "10:00-10:00"'),
        ({"tue": "24:00-24:00"}, 'window "24:00-24:00"'),
        ({"tue": "09:00-13:00,12:00-18:00"}, "windows 09:00-13:00 and 12:00-18:00 overlap"),
        ({"tue": "09:00"}, 'portals.acme.hours.tue: bad window "09:00"'),
        ({"tue": "09:00-13:00,"}, 'bad window "" in "09:00-13:00,"'),
        ({"tue": 9}, "portals.acme.hours.tue: must be a string"),
    ],
)
def test_parse_hours_errors_name_where_and_value(spec: dict[str, object], message: str) -> None:
    """Every malformed day raises CalendarError naming the table, the day and the bad value."""
    with pytest.raises(CalendarError, match=message.replace("(", r"\(")):
        parse_hours(spec, where="portals.acme.hours")


def test_default_hours_are_nine_to_nine_every_day() -> None:
    """Without an [hours] table a line is open 09:00-21:00 on all seven days."""
    assert dict(DEFAULT_HOURS) == dict.fromkeys(range(7), ((540, 1260),))


@pytest.mark.parametrize(
    "weekly", [{7: ((0, 60),)}, {0: ((60, 0),)}, {0: ((0, 1441),)}, {0: ((0, 60), (30, 90))}]
)
def test_calendar_rejects_invalid_weekly_hours(weekly: WeeklyHours) -> None:
    """A Calendar built by hand still refuses windows parse_hours would have refused."""
    with pytest.raises(CalendarError):
        Calendar(MSK, weekly)


def test_calendar_is_frozen() -> None:
    """Calendars are immutable values."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        OFFICE.tz = BERLIN  # type: ignore[misc]


@pytest.mark.parametrize(
    ("cal", "at", "expected"),
    [
        (OFFICE, datetime(2026, 11, 23, 9, 0, tzinfo=MSK), True),  # Monday opening
        (OFFICE, datetime(2026, 11, 23, 8, 59, 59, 999999, tzinfo=MSK), False),
        (OFFICE, datetime(2026, 11, 23, 12, 59, 59, tzinfo=MSK), True),
        (OFFICE, datetime(2026, 11, 23, 13, 0, tzinfo=MSK), False),  # lunch
        (OFFICE, datetime(2026, 11, 23, 14, 0, tzinfo=MSK), True),
        (OFFICE, datetime(2026, 11, 23, 18, 0, tzinfo=MSK), False),  # end is exclusive
        (OFFICE, datetime(2026, 11, 21, 10, 0, tzinfo=MSK), True),  # Saturday
        (OFFICE, datetime(2026, 11, 22, 12, 0, tzinfo=MSK), False),  # Sunday left out
        (OFFICE, datetime(2026, 11, 25, 10, 0, tzinfo=MSK), False),  # closed date
        (OFFICE, datetime(2026, 11, 4, 10, 0, tzinfo=MSK), False),  # RU Unity Day
        (OFFICE, datetime(2027, 1, 1, 10, 0, tzinfo=MSK), False),  # RU New Year
        (OFFICE, datetime(2026, 11, 23, 6, 0, tzinfo=UTC), True),  # 09:00 MSK given in UTC
        (OFFICE, datetime(2026, 11, 23, 1, 0, tzinfo=NEW_YORK), True),  # 09:00 MSK given in New York
        (OFFICE, datetime(2026, 11, 23, 5, 59, tzinfo=UTC), False),
        (ALWAYS, datetime(2026, 11, 22, 23, 59, 59, tzinfo=UTC), True),
        (ALWAYS, datetime(2026, 11, 23, 0, 0, tzinfo=UTC), True),
        (NEVER, datetime(2026, 11, 23, 12, 0, tzinfo=UTC), False),
    ],
)
def test_is_open(cal: Calendar, at: datetime, expected: bool) -> None:
    """An instant is open inside a window of its local weekday on a day that is not closed."""
    assert cal.is_open(at) is expected


@pytest.mark.parametrize(
    ("country", "day", "expected"),
    [
        ("RU", date(2027, 1, 1), True),
        ("RU", date(2027, 1, 11), False),
        ("US", date(2026, 7, 3), True),  # Independence Day observed
        ("US", date(2026, 3, 31), False),
        ("US-CA", date(2026, 3, 31), True),  # Cesar Chavez Day, California only
        ("DE", date(2026, 10, 3), True),
        (None, date(2027, 1, 1), False),
    ],
)
def test_is_closed_day_uses_public_holidays(country: str | None, day: date, expected: bool) -> None:
    """A country code (optionally with a subdivision) closes that country's public holidays."""
    assert Calendar(MSK, DEFAULT_HOURS, holiday_country=country).is_closed_day(day) is expected


@pytest.mark.parametrize(
    ("cal", "at", "expected"),
    [
        pytest.param(
            OFFICE,
            datetime(2026, 11, 23, 10, 30, tzinfo=MSK),
            datetime(2026, 11, 23, 10, 30, tzinfo=MSK),
            id="open",
        ),
        pytest.param(
            OFFICE,
            datetime(2026, 11, 23, 7, 0, tzinfo=MSK),
            datetime(2026, 11, 23, 9, 0, tzinfo=MSK),
            id="early",
        ),
        pytest.param(
            OFFICE,
            datetime(2026, 11, 23, 13, 5, tzinfo=MSK),
            datetime(2026, 11, 23, 14, 0, tzinfo=MSK),
            id="lunch",
        ),
        pytest.param(
            OFFICE,
            datetime(2026, 11, 23, 18, 30, tzinfo=MSK),
            datetime(2026, 11, 24, 9, 0, tzinfo=MSK),
            id="late",
        ),
        pytest.param(
            OFFICE,
            datetime(2026, 11, 20, 19, 0, tzinfo=MSK),
            datetime(2026, 11, 21, 10, 0, tzinfo=MSK),
            id="fri-sat",
        ),
        pytest.param(
            MON_FRI,
            datetime(2026, 11, 20, 19, 0, tzinfo=MSK),
            datetime(2026, 11, 23, 9, 0, tzinfo=MSK),
            id="fri-mon",
        ),
        pytest.param(
            OFFICE,
            datetime(2026, 11, 24, 18, 0, tzinfo=MSK),
            datetime(2026, 11, 26, 9, 0, tzinfo=MSK),
            id="closed",
        ),
        pytest.param(
            OFFICE,
            datetime(2026, 11, 3, 18, 0, tzinfo=MSK),
            datetime(2026, 11, 5, 9, 0, tzinfo=MSK),
            id="holiday",
        ),
        pytest.param(
            MON_FRI,
            datetime(2026, 12, 30, 19, 0, tzinfo=MSK),
            datetime(2027, 1, 11, 9, 0, tzinfo=MSK),
            id="new-year",
        ),
        pytest.param(
            OFFICE,
            datetime(2026, 11, 23, 15, 0, tzinfo=UTC),
            datetime(2026, 11, 24, 9, 0, tzinfo=MSK),
            id="utc-in",
        ),
        pytest.param(
            Calendar(NEW_YORK, hours(mon="09:00-17:00")),
            datetime(2026, 11, 23, 13, 0, tzinfo=MSK),
            datetime(2026, 11, 23, 9, 0, tzinfo=NEW_YORK),
            id="new-york",
        ),
        pytest.param(
            ALWAYS,
            datetime(2026, 11, 22, 23, 59, tzinfo=UTC),
            datetime(2026, 11, 22, 23, 59, tzinfo=UTC),
            id="24h",
        ),
        pytest.param(
            Calendar(ZoneInfo("UTC"), hours(sun="00:00-24:00"), closed_dates=frozenset({date(2026, 11, 22)})),
            datetime(2026, 11, 21, 12, 0, tzinfo=UTC),
            datetime(2026, 11, 29, 0, 0, tzinfo=UTC),
            id="next-week",
        ),
    ],
)
def test_next_open(cal: Calendar, at: datetime, expected: datetime) -> None:
    """next_open returns `at` when open, else the next window start on a day that is not closed."""
    result = next_open(cal, at)
    assert result == expected
    assert result is not None and result.tzinfo is cal.tz


@pytest.mark.parametrize(
    ("tz", "spec", "at", "expected"),
    [
        # Berlin springs forward 2026-03-29 02:00 CET -> 03:00 CEST (01:00 UTC).
        pytest.param(
            BERLIN, "02:30-04:00", "2026-03-28T23:00:00+00:00", "2026-03-29T01:00:00+00:00", id="be-gap"
        ),
        pytest.param(
            BERLIN, "01:00-02:30", "2026-03-29T00:59:59+00:00", "2026-03-29T00:59:59+00:00", id="be-pre"
        ),
        pytest.param(
            BERLIN, "01:00-02:30", "2026-03-29T01:00:00+00:00", "2026-03-29T23:00:00+00:00", id="be-cut"
        ),
        pytest.param(
            BERLIN, "03:00-04:00", "2026-03-29T00:30:00+00:00", "2026-03-29T01:00:00+00:00", id="be-3am"
        ),
        # Berlin falls back 2026-10-25 03:00 CEST -> 02:00 CET (01:00 UTC); 02:xx happens twice.
        pytest.param(
            BERLIN, "02:00-02:30", "2026-10-25T00:45:00+00:00", "2026-10-25T01:00:00+00:00", id="be-fold"
        ),
        pytest.param(
            BERLIN, "02:00-02:30", "2026-10-24T23:00:00+00:00", "2026-10-25T00:00:00+00:00", id="be-1st"
        ),
        pytest.param(
            BERLIN, "02:00-02:30", "2026-10-25T01:30:00+00:00", "2026-10-26T01:00:00+00:00", id="be-done"
        ),
        pytest.param(
            BERLIN, "02:45-02:55", "2026-10-25T00:56:00+00:00", "2026-10-25T01:45:00+00:00", id="be-late"
        ),
        # New York springs forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00 UTC).
        pytest.param(
            NEW_YORK, "02:30-03:30", "2026-03-08T05:00:00+00:00", "2026-03-08T07:00:00+00:00", id="ny-gap"
        ),
        pytest.param(
            NEW_YORK, "02:00-03:00", "2026-03-08T05:00:00+00:00", "2026-03-09T06:00:00+00:00", id="ny-void"
        ),
        pytest.param(
            NEW_YORK, "01:30-02:30", "2026-03-08T06:59:59+00:00", "2026-03-08T06:59:59+00:00", id="ny-edge"
        ),
        # New York falls back 2026-11-01 02:00 EDT -> 01:00 EST (06:00 UTC); 01:xx happens twice.
        pytest.param(
            NEW_YORK, "00:00-01:30", "2026-11-01T05:45:00+00:00", "2026-11-01T06:00:00+00:00", id="ny-fold"
        ),
        pytest.param(
            NEW_YORK, "01:00-01:30", "2026-11-01T05:30:00+00:00", "2026-11-01T06:00:00+00:00", id="ny-2nd"
        ),
        pytest.param(
            NEW_YORK, "01:15-03:00", "2026-11-01T05:50:00+00:00", "2026-11-01T05:50:00+00:00", id="ny-span"
        ),
    ],
)
def test_next_open_across_daylight_saving(tz: ZoneInfo, spec: str, at: str, expected: str) -> None:
    """Windows follow the wall clock: gap starts move to the end of the gap, repeated hours open twice."""
    result = next_open(Calendar(tz, every_day(spec)), datetime.fromisoformat(at))
    assert result is not None and result.tzinfo is tz
    assert result.astimezone(UTC) == datetime.fromisoformat(expected)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ("2026-11-01T05:15:00+00:00", True),  # 01:15 EDT, first occurrence
        ("2026-11-01T05:45:00+00:00", False),  # 01:45 EDT
        ("2026-11-01T06:15:00+00:00", True),  # 01:15 EST, second occurrence
        ("2026-11-01T06:30:00+00:00", False),  # 01:30 EST
    ],
)
def test_repeated_hour_is_open_in_both_occurrences(at: str, expected: bool) -> None:
    """A window inside the repeated autumn hour is open in each occurrence of it."""
    assert Calendar(NEW_YORK, every_day("01:00-01:30")).is_open(datetime.fromisoformat(at)) is expected


@pytest.mark.parametrize(
    "call",
    [
        lambda: OFFICE.is_open(datetime(2026, 11, 23, 10, 0)),
        lambda: next_open(OFFICE, datetime(2026, 11, 23, 10, 0)),
        lambda: earliest_run(
            OFFICE,
            now=datetime(2026, 11, 20, 19, tzinfo=MSK),
            not_before=datetime(2026, 11, 23),
            deadline=None,
        ),
        lambda: earliest_run(
            OFFICE,
            now=datetime(2026, 11, 20, 19, tzinfo=MSK),
            not_before=None,
            deadline=datetime(2026, 11, 23),
        ),
    ],
)
def test_naive_datetimes_are_refused(call: Callable[[], object]) -> None:
    """A naive datetime raises instead of being read as the host's local time."""
    with pytest.raises(ValueError, match="must be a timezone-aware datetime"):
        call()


def test_next_open_within_horizon() -> None:
    """A line that never opens, or opens only after the horizon, yields None."""
    late = Calendar(ZoneInfo("UTC"), every_day("09:00-10:00"), closed_dates=frozenset({date(2026, 11, 24)}))
    assert next_open(NEVER, datetime(2026, 11, 23, tzinfo=UTC)) is None
    assert next_open(late, datetime(2026, 11, 23, 12, tzinfo=UTC), horizon_days=1) is None
    assert next_open(late, datetime(2026, 11, 23, 12, tzinfo=UTC), horizon_days=2) is not None


FRIDAY_EVENING = datetime(2026, 11, 20, 19, 0, tzinfo=MSK)
MONDAY_9 = datetime(2026, 11, 23, 9, 0, tzinfo=MSK)


@pytest.mark.parametrize(
    ("cal", "now", "not_before", "deadline", "expected"),
    [
        pytest.param(MON_FRI, FRIDAY_EVENING, None, None, RunAt(MONDAY_9), id="weekend"),
        pytest.param(
            MON_FRI, FRIDAY_EVENING, None, MONDAY_9 + timedelta(hours=3), RunAt(MONDAY_9), id="in-time"
        ),
        pytest.param(
            MON_FRI,
            FRIDAY_EVENING,
            datetime(2026, 11, 24, 12, 0, tzinfo=MSK),
            None,
            RunAt(datetime(2026, 11, 24, 12, 0, tzinfo=MSK)),
            id="not-before",
        ),
        pytest.param(
            MON_FRI,
            FRIDAY_EVENING,
            FRIDAY_EVENING - timedelta(days=1),
            None,
            RunAt(MONDAY_9),
            id="past-not-before",
        ),
        pytest.param(
            MON_FRI,
            MONDAY_9 + timedelta(hours=1),
            None,
            None,
            RunAt(MONDAY_9 + timedelta(hours=1)),
            id="open-now",
        ),
        pytest.param(
            MON_FRI,
            FRIDAY_EVENING,
            None,
            datetime(2026, 11, 22, 12, 0, tzinfo=MSK),
            Expired(
                "next opening 2026-11-23T09:00:00+03:00 is after the deadline 2026-11-22T12:00:00+03:00",
                MONDAY_9,
            ),
            id="too-late",
        ),
        pytest.param(
            MON_FRI,
            FRIDAY_EVENING,
            None,
            MONDAY_9.astimezone(UTC),
            Expired(
                "next opening 2026-11-23T09:00:00+03:00 is at the deadline 2026-11-23T09:00:00+03:00",
                MONDAY_9,
            ),
            id="at-deadline",
        ),
        pytest.param(
            NEVER, FRIDAY_EVENING, None, None, Expired("line is never open within 400 days", None), id="never"
        ),
    ],
)
def test_earliest_run(
    cal: Calendar,
    now: datetime,
    not_before: datetime | None,
    deadline: datetime | None,
    expected: RunAt | Expired,
) -> None:
    """A job runs at the first opening after max(now, not_before) unless that is not before its deadline."""
    assert earliest_run(cal, now=now, not_before=not_before, deadline=deadline) == expected


@pytest.mark.parametrize(
    ("cal", "now", "not_before", "expected"),
    [
        pytest.param(MON_FRI, FRIDAY_EVENING, None, datetime(2026, 11, 24, 9, 0, tzinfo=MSK), id="friday"),
        pytest.param(
            MON_FRI, MONDAY_9 + timedelta(hours=2), None, datetime(2026, 11, 24, 11, tzinfo=MSK), id="open"
        ),
        pytest.param(
            MON_FRI,
            FRIDAY_EVENING,
            datetime(2026, 11, 24, 20, 0, tzinfo=MSK),
            datetime(2026, 11, 26, 9, 0, tzinfo=MSK),
            id="not-before",
        ),
        pytest.param(
            # Opens Saturday 10:00 CEST; 86400 s later the clocks are an hour back: Sunday 09:00 CET.
            Calendar(BERLIN, every_day("10:00-12:00")),
            datetime(2026, 10, 24, 7, 0, tzinfo=BERLIN),
            None,
            datetime(2026, 10, 25, 9, 0, tzinfo=BERLIN),
            id="dst",
        ),
        pytest.param(NEVER, FRIDAY_EVENING, None, None, id="never"),
    ],
)
def test_default_deadline(
    cal: Calendar, now: datetime, not_before: datetime | None, expected: datetime | None
) -> None:
    """The default deadline counts default_deadline seconds from the job's first open moment."""
    assert default_deadline(cal, now=now, not_before=not_before, default_deadline_s=86400) == expected


# --- properties -------------------------------------------------------------------------------

ZONES = {
    # zone -> its 2026 UTC offset changes (probes and instants cluster around them)
    "UTC": [],
    "Asia/Kolkata": [],
    "Europe/Moscow": [],
    "Europe/Berlin": ["2026-03-29T01:00:00+00:00", "2026-10-25T01:00:00+00:00"],
    "America/New_York": ["2026-03-08T07:00:00+00:00", "2026-11-01T06:00:00+00:00"],
    "America/Santiago": ["2026-04-05T03:00:00+00:00", "2026-09-06T04:00:00+00:00"],  # at local midnight
    "America/Havana": ["2026-03-08T05:00:00+00:00", "2026-11-01T05:00:00+00:00"],  # at local midnight
    "Australia/Lord_Howe": ["2026-04-04T15:00:00+00:00", "2026-10-03T15:30:00+00:00"],  # 30-minute shift
    "Pacific/Chatham": ["2026-04-04T14:00:00+00:00", "2026-09-26T14:00:00+00:00"],
}
# Window edges biased towards the hours that DST changes touch.
EDGES = st.one_of(st.integers(0, 1440), st.sampled_from([0, 30, 60, 90, 120, 150, 180, 1410, 1440]))


@st.composite
def day_windows(draw: st.DrawFn) -> tuple[Window, ...]:
    """Sorted, non-overlapping windows for one day (possibly none)."""
    bounds = sorted(draw(st.sets(EDGES, max_size=6)))
    return tuple(zip(bounds[::2], bounds[1::2], strict=False))


@st.composite
def calendar_and_instant(draw: st.DrawFn) -> tuple[Calendar, datetime]:
    """A random calendar and an instant, often close to one of its zone's DST changes."""
    zone = draw(st.sampled_from(sorted(ZONES)))
    changes = [datetime.fromisoformat(text) for text in ZONES[zone]]
    near_change = st.builds(
        lambda change, seconds: change + timedelta(seconds=seconds),
        st.sampled_from(changes or [datetime(2026, 6, 1, tzinfo=UTC)]),
        st.integers(-36 * 3600, 36 * 3600),
    )
    anywhere = st.datetimes(
        min_value=datetime(2026, 1, 1),
        max_value=datetime(2026, 12, 31),
        timezones=st.sampled_from([ZoneInfo(name) for name in ZONES]),
        allow_imaginary=False,
    )
    at = draw(st.one_of(near_change, anywhere))
    weekly = {
        day: windows
        for day, windows in draw(st.dictionaries(st.integers(0, 6), day_windows())).items()
        if windows
    }
    start = at.astimezone(ZoneInfo(zone)).date()
    closed = draw(
        st.frozensets(st.integers(-1, 14).map(lambda days: start + timedelta(days=days)), max_size=6)
    )
    country = draw(st.sampled_from([None, "RU", "US", "DE"]))
    return Calendar(ZoneInfo(zone), weekly, closed_dates=closed, holiday_country=country), at


def probes(cal: Calendar, at: datetime, result: datetime) -> list[datetime]:
    """Instants in [at, result) where an opening missed by next_open would most likely show."""
    at, result = utc(at), utc(result)
    span = result - at
    candidates = [result - timedelta(seconds=1), result - timedelta(microseconds=1), at]
    candidates += [at + span * k / 97 for k in range(97)]
    candidates += [
        datetime.fromisoformat(text) + timedelta(seconds=s) for text in ZONES[cal.tz.key] for s in (-1, 0)
    ]
    day = at.astimezone(cal.tz).date() - timedelta(days=1)
    for _ in range(min(span.days + 3, 30)):
        for start, end in cal.weekly.get(day.weekday(), ()):
            for minute in (start, end):
                wall = datetime.combine(day, time()) + timedelta(minutes=minute)
                for fold in (0, 1):
                    # Through UTC so that wall times in a gap become real instants.
                    instant = wall.replace(tzinfo=cal.tz, fold=fold).astimezone(UTC)
                    candidates += [instant, instant - timedelta(seconds=1)]
        day += timedelta(days=1)
    return [probe for probe in candidates if at <= probe < result]


@settings(max_examples=200, deadline=None)
@given(case=calendar_and_instant(), fraction=st.floats(0, 1))
def test_next_open_is_the_earliest_open_instant(case: tuple[Calendar, datetime], fraction: float) -> None:
    """next_open returns an open instant at or after `at`, on an open day, with nothing open before it."""
    cal, at = case
    result = next_open(cal, at)
    if result is None:
        assert not any(cal.is_open(at + timedelta(minutes=15 * k)) for k in range(4 * 24 * 8))
        return
    assert result.tzinfo is cal.tz
    assert utc(result) >= utc(at)
    assert cal.is_open(result)
    assert not cal.is_closed_day(result.astimezone(cal.tz).date())
    assert not [probe for probe in probes(cal, at, result) if cal.is_open(probe)]
    # Monotonic: any instant between `at` and the result leads to the same opening.
    assert utc(next_open(cal, utc(at) + (utc(result) - utc(at)) * fraction)) == utc(result)
    assert utc(next_open(cal, result)) == utc(result)


@pytest.mark.parametrize(
    ("cal", "at", "expected"),
    [
        # Moscow (UTC+3), Monday 2026-11-30: open 09:00-13:00 and 14:00-18:00 local
        (OFFICE, datetime(2026, 11, 30, 7, 0, tzinfo=UTC), datetime(2026, 11, 30, 10, 0, tzinfo=UTC)),
        (OFFICE, datetime(2026, 11, 30, 9, 59, 59, tzinfo=UTC), datetime(2026, 11, 30, 10, 0, tzinfo=UTC)),
        (OFFICE, datetime(2026, 11, 30, 10, 0, tzinfo=UTC), None),  # lunch
        (OFFICE, datetime(2026, 11, 30, 11, 0, tzinfo=UTC), datetime(2026, 11, 30, 15, 0, tzinfo=UTC)),
        (OFFICE, datetime(2026, 11, 30, 15, 0, tzinfo=UTC), None),  # closed at 18:00 sharp
        (OFFICE, datetime(2026, 11, 25, 7, 0, tzinfo=UTC), None),  # an extra closed date
        # windows that touch count as one; around the clock runs to the horizon
        (
            Calendar(MSK, hours(thu="09:00-13:00,13:00-18:00")),
            datetime(2026, 12, 3, 7, 0, tzinfo=UTC),
            datetime(2026, 12, 3, 15, 0, tzinfo=UTC),
        ),
        (
            Calendar(ZoneInfo("UTC"), hours(mon="20:00-24:00", tue="00:00-02:00")),
            datetime(2026, 11, 30, 23, 0, tzinfo=UTC),
            datetime(2026, 12, 1, 2, 0, tzinfo=UTC),
        ),
        (NEVER, datetime(2026, 11, 30, 12, 0, tzinfo=UTC), None),
    ],
)
def test_open_until(cal: Calendar, at: datetime, expected: datetime | None) -> None:
    """open_until is the first closed instant after an open `at`, and None when `at` is closed."""
    assert open_until(cal, at) == expected


def test_open_until_around_the_clock_stops_at_its_horizon() -> None:
    """A line that never closes closes, for open_until, at the end of the days it looks at."""
    at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    until = open_until(ALWAYS, at, horizon_days=2)
    assert until is not None and until > at + timedelta(days=2)


@given(case=calendar_and_instant())
def test_open_until_is_the_end_of_the_open_stretch(case: tuple[Calendar, datetime]) -> None:
    """Open at `at` exactly when open_until answers; open just before the answer, closed at it."""
    cal, at = case
    until = open_until(cal, at)
    assert (until is not None) == cal.is_open(at)
    if until is not None and until < at + timedelta(days=7):
        assert until > at
        assert cal.is_open(until - timedelta(seconds=1))
        assert not cal.is_open(until)


def test_a_calendar_works_out_each_local_date_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decisions about the same days (every job of the day asks) reuse the days' intervals already found."""
    from schemas.policy import calendar

    cal = Calendar(MSK, WEEKDAYS, holiday_country="RU")
    worked_out: list[date] = []
    original = calendar._day_intervals

    def counting(c: Calendar, day: date) -> list[tuple[datetime, datetime]]:
        worked_out.append(day)
        return original(c, day)

    monkeypatch.setattr(calendar, "_day_intervals", counting)
    now = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    first = [
        open_until(cal, now),
        next_open(cal, now),
        earliest_run(cal, now=now, not_before=None, deadline=None),
    ]
    days = len(worked_out)
    assert days == len(set(worked_out))
    again = [
        open_until(cal, now),
        next_open(cal, now),
        earliest_run(cal, now=now, not_before=None, deadline=None),
    ]
    assert again == first
    assert len(worked_out) == days


def test_a_calendar_remembers_a_bounded_number_of_days() -> None:
    """Looking far ahead day after day keeps at most _MAX_DAYS dates in memory, and the answers stay right."""
    from schemas.policy import calendar

    cal = Calendar(MSK, WEEKDAYS, holiday_country="RU")
    fresh = Calendar(MSK, WEEKDAYS, holiday_country="RU")
    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    for index in range(0, calendar._MAX_DAYS + 200, 3):
        assert len(cal._days) <= calendar._MAX_DAYS
        at = start + timedelta(days=index)
        assert next_open(cal, at) == next_open(dataclasses.replace(fresh), at)
