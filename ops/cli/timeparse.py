"""Times and durations typed by ops on the command line (``--at``, ``--in``, ``--deadline``). Pure."""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, tzinfo

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|m|s)", re.IGNORECASE)
_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
MAX_DURATION_S = 3650 * 86400
"""Ten years: far beyond the horizon admission accepts, far below what ``timedelta`` can hold."""


class TimeParseError(ValueError):
    """Text that is not a time or duration callq understands; the message says what is."""


def parse_duration(text: str) -> timedelta:
    """Parse ``90s``, ``15m``, ``2h``, ``1d``, ``1h30m`` or plain seconds (``3600``).

    Raises:
        TimeParseError: anything else, or a negative duration.
    """
    raw = text.strip()
    if re.fullmatch(r"\d+(\.\d+)?", raw):
        total_s = float(raw)
    else:
        parts = _DURATION.findall(raw)
        if not parts or _DURATION.sub("", raw).strip():
            raise TimeParseError(f"{text!r} is not a duration: use e.g. 90s, 15m, 2h, 1d or 1h30m")
        total_s = sum(float(n) * _UNITS[u.lower()] for n, u in parts)
    if total_s > MAX_DURATION_S:
        # timedelta itself overflows near 10**9 days; no callback is asked for years ahead
        raise TimeParseError(f"{text!r} is too long: at most {MAX_DURATION_S // 86400} days")
    return timedelta(seconds=total_s)


def parse_at(text: str, *, tz: tzinfo, now: datetime) -> datetime:
    """Parse a moment: with an explicit offset, or a local time in the portal's zone ``tz``.

    Accepted: ``2026-11-22T10:00:00+03:00``, ``2026-11-22T07:00Z``, ``2026-11-22 10:00``
    (portal time), ``10:00`` (the next 10:00 in portal time, today or tomorrow).

    Raises:
        TimeParseError: the text is not one of those.
    """
    raw = text.strip().replace("z", "Z")
    if re.fullmatch(r"\d{1,2}:\d{2}(:\d{2})?", raw):
        try:
            clock = time.fromisoformat(raw.zfill(5) if len(raw) == 4 else raw)
        except ValueError:
            raise TimeParseError(
                f"{text!r} is not a time of day: hours 00-23, minutes and seconds 00-59"
            ) from None
        local_now = now.astimezone(tz)
        candidate = datetime.combine(local_now.date(), clock, tzinfo=tz)
        if candidate <= local_now:
            candidate = datetime.combine(local_now.date() + timedelta(days=1), clock, tzinfo=tz)
        return candidate
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise TimeParseError(
            f"{text!r} is not a time: use 2026-11-22T10:00+03:00, 2026-11-22 10:00 (portal time) or 10:00"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=tz)
