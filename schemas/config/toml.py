"""Reading the TOML file: `_Table`, which names the file and dotted key in every error, and the
validators of single values (numbers, strings, URLs, time zone, region, holidays, closed dates, hours
and `[portals.NAME.lines.LINE]` tables).

Nothing here looks at the environment; `schemas.config.env` combines these readers with the CALLQ_*
variables. Secrets are never echoed: a bad secret is described by its type only.
"""

from __future__ import annotations

import functools
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import phonenumbers

from schemas.config.loopback import is_loopback_host
from schemas.config.settings import MAX_TEXT_CHARS, ConfigError, LineConfig
from schemas.policy.hours import CalendarError, WeeklyHours, parse_hours

# The keys each table may have; any other key is an error naming the allowed ones.
_TOP_KEYS = frozenset(
    {
        "redis_url",
        "key_prefix",
        "api_tokens",
        "portals",
        "outcome_retention",
        "outcomes_maxlen",
        "start_replicas",
        "start_replicas_timeout",
    }
)
_PORTAL_KEYS = frozenset(
    {"webhook_url", "oauth", "timezone", "default_region", "rate", "burst", "holidays", "closed_dates"}
    | {"max_attempts", "dedupe_window", "default_deadline", "retry_unknown", "hours", "lines"}
    | {"operating_budget", "calls"}
)
_LINE_KEYS = frozenset({"hours", "min_interval", "text_to_pronounce", "voice"})
_LINE_REDIAL_KEYS = frozenset({"redial_on", "redial_delays", "max_redials"})
_OAUTH_KEYS = frozenset({"client_id", "client_secret", "refresh_token", "domain", "token_url"})
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _show(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def _kind(value: object) -> str:
    kinds = (
        (bool, "true/false"),
        (int, "an integer"),
        (float, "a number"),
        (str, "a string"),
        (list, "an array"),
    )
    return next((kind for cls, kind in kinds if isinstance(value, cls)), "a date or time")


@functools.cache
def _holiday_countries() -> Mapping[str, frozenset[str]]:
    return {
        code: frozenset(subdivisions) for code, subdivisions in holidays.list_supported_countries().items()
    }


@dataclass(frozen=True)
class _Table:
    """A TOML table being read, with what an error message needs: file and dotted path."""

    data: Mapping[str, object]
    file: str
    where: str = ""
    show_key: bool = True  # False for a value read from an environment variable: its name says it

    def key(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str | None, detail: str) -> NoReturn:
        where = (self.key(key) if key else self.where or None) if self.show_key else None
        raise ConfigError(detail, source=self.file, key=where)

    def check_keys(self, allowed: frozenset[str]) -> None:
        unknown = sorted(set(self.data) - allowed)
        if unknown:
            names = ", ".join(f'"{name}"' for name in unknown)
            self.fail(
                None,
                f"unknown key{'s' if len(unknown) > 1 else ''} {names} (allowed: {', '.join(sorted(allowed))})",
            )

    def table(self, key: str) -> _Table | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            # Name only the type: `acme = "https://…/rest/1/<code>/"` must not echo the code.
            self.fail(key, f"must be a table, got {_kind(value)}")
        return _Table(value, self.file, self.key(key))

    def number(self, key: str, default: float, *, positive: bool = False) -> float:
        """Read a finite number of seconds or a rate: > 0 if `positive`, else >= 0."""
        value = self.data.get(key, default)
        if (
            isinstance(value, int | float)
            and not isinstance(value, bool)
            and math.isfinite(value)
            and (value > 0 or (value == 0 and not positive))
        ):
            return float(value)
        self.fail(key, f"must be {'a positive number' if positive else 'a number >= 0'}, got {_show(value)}")

    def integer(self, key: str, default: int, *, at_least: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < at_least:
            self.fail(key, f"must be an integer >= {at_least}, got {_show(value)}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            self.fail(key, f"must be true or false, got {_show(value)}")
        return value

    def string(self, key: str, *, secret: bool = False, max_chars: int | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.fail(key, "must be a non-empty string" + ("" if secret else f", got {_show(value)}"))
        if max_chars is not None and len(value) > max_chars:
            self.fail(key, f"must be 1..{max_chars} characters, got {len(value)}")
        return value

    def hours(self, key: str) -> WeeklyHours | None:
        table = self.table(key)
        try:
            return None if table is None else parse_hours(table.data, where=table.where)
        except CalendarError as exc:
            raise ConfigError(str(exc), source=self.file) from None


def _checked_url(url: str, *, source: str, key: str | None, shown: str) -> str:
    def fail(detail: str) -> NoReturn:
        raise ConfigError(f"{detail}, got {shown}", source=source, key=key)

    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  # raises ValueError for a bad port
    except ValueError:
        fail("must be a valid URL")
    if parts.scheme not in ("http", "https") or not host:
        fail("must be an http(s) URL")
    if parts.scheme == "http" and not is_loopback_host(host):
        fail("must use https (plain http is allowed only for loopback: 127.0.0.0/8, ::1, localhost)")
    if parts.query or parts.fragment:
        fail("must not have a query or fragment")
    return url


ZONE_EXAMPLE = 'an IANA time zone name like "Europe/Moscow" (or "UTC", on purpose)'
"""What a time zone must be, as errors say it."""


def _timezone(table: _Table) -> ZoneInfo | None:
    """The portal's ``timezone``, or None when the table has none (the caller says what is missing)."""
    name = table.string("timezone")
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        table.fail("timezone", f"must be {ZONE_EXAMPLE}, got {_show(name)}")


def zone_of(value: str, *, source: str, key: str | None) -> ZoneInfo:
    """A time zone given outside the file (``CALLQ_TIMEZONE``).

    Raises:
        ConfigError: not a zone name.
    """
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"must be {ZONE_EXAMPLE}, got {_show(value)}", source=source, key=key) from None


def _region(table: _Table) -> str | None:
    value = table.string("default_region")
    if value is None or value.upper() in phonenumbers.SUPPORTED_REGIONS:
        return None if value is None else value.upper()
    table.fail("default_region", f'must be an ISO 3166 alpha-2 region code like "RU", got {_show(value)}')


def _holidays(table: _Table) -> str | None:
    value = table.string("holidays")
    if value is None:
        return None
    country, dash, subdivision = value.strip().upper().partition("-")
    known = _holiday_countries().get(country)
    if known is None:
        table.fail(
            "holidays", f'must be a country code known to the holidays package, like "RU", got {_show(value)}'
        )
    if not dash:
        return country
    canonical = next((code for code in sorted(known) if code.upper() == subdivision), None)
    if canonical is None:
        table.fail(
            "holidays",
            f"{_show(subdivision)} is not a subdivision of {country} known to the holidays package",
        )
    return f"{country}-{canonical}"


def _closed_dates(table: _Table) -> frozenset[date]:
    value = table.data.get("closed_dates", [])
    if not isinstance(value, list):
        table.fail("closed_dates", f'must be a list of ISO dates like ["2026-12-31"], got {_show(value)}')
    days = set()
    for index, item in enumerate(value):
        if isinstance(item, date) and not isinstance(item, datetime):
            days.add(item)
            continue
        try:
            if isinstance(item, str) and _ISO_DATE.fullmatch(item):
                days.add(date.fromisoformat(item))
                continue
        except ValueError:
            pass
        table.fail(f"closed_dates[{index}]", f'must be an ISO date like "2026-12-31", got {_show(item)}')
    return frozenset(days)


def _lines(table: _Table) -> dict[str, LineConfig]:
    lines = table.table("lines")
    if lines is None:
        return {}
    configs: dict[str, LineConfig] = {}
    for line_id in lines.data:
        if not line_id.strip():
            lines.fail(None, "line names must be non-empty")
        line = lines.table(line_id) or lines.fail(line_id, "must be a table")
        line.check_keys(_LINE_KEYS | _LINE_REDIAL_KEYS)
        configs[line_id] = LineConfig(
            line_id=line_id,
            hours=line.hours("hours"),
            min_interval_s=line.number("min_interval", 0.0),
            text_to_pronounce=line.string("text_to_pronounce", max_chars=MAX_TEXT_CHARS),
            voice=line.string("voice"),
        )
    return configs


def _read_toml(path: Path, file: str) -> dict[str, object]:
    try:
        with path.open("rb") as stream:
            return tomllib.load(stream)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML: {exc}", source=file) from None
    except UnicodeDecodeError:
        raise ConfigError("is not UTF-8 text", source=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot be read: {exc.strerror}", source=file) from None
