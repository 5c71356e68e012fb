"""Times and durations typed by ops. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ops.cli.timeparse import TimeParseError, parse_at, parse_duration

MSK = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)  # 15:00 in Moscow


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("2h", 7200), ("1d", 86400), ("1h30m", 5400), ("3600", 3600), ("1.5h", 5400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    """Units s/m/h/d combine; a bare number is seconds."""
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "2 hours", "1h garbage", "-5m"])
def test_parse_duration_rejects(text: str) -> None:
    """Anything else is an error that shows the accepted forms."""
    with pytest.raises(TimeParseError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-22T10:00:00+03:00", datetime(2026, 11, 22, 7, 0, tzinfo=UTC)),
        ("2026-11-22T07:00Z", datetime(2026, 11, 22, 7, 0, tzinfo=UTC)),
        ("2026-11-22 10:00", datetime(2026, 11, 22, 7, 0, tzinfo=UTC)),
        ("16:30", datetime(2026, 11, 21, 13, 30, tzinfo=UTC)),
        ("10:00", datetime(2026, 11, 22, 7, 0, tzinfo=UTC)),
    ],
)
def test_parse_at(text: str, expected: datetime) -> None:
    """Explicit offsets are kept; local times are the portal's; a bare time is its next occurrence."""
    assert parse_at(text, tz=MSK, now=NOW) == expected


def test_parse_at_rejects() -> None:
    """A time that is not one of the accepted forms is an error naming them."""
    with pytest.raises(TimeParseError, match="is not a time"):
        parse_at("next friday", tz=MSK, now=NOW)


@pytest.mark.parametrize("text", ["25:00", "24:00", "10:60", "9:99", "10:00:61"])
def test_parse_at_rejects_impossible_times_of_day(text: str) -> None:
    """A time of day out of range is a TimeParseError saying so, not some other ValueError."""
    with pytest.raises(TimeParseError, match="is not a time of day"):
        parse_at(text, tz=MSK, now=NOW)
