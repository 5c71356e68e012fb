"""Configuration: command-line flag > CALLQ_* environment variable > TOML file > built-in default.

The CLI loads it once, `load_settings(os.environ, overrides=...)`, into frozen objects; nothing here
reads `os.environ` itself. Every problem raises one `ConfigError` naming the file (or variable) and
the key, for example `callq.toml: portals.acme.rate: must be a positive number, got "fast"`.
Secrets (webhook codes, OAuth secrets, API tokens, Redis passwords) never appear in a message or repr.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
import phonenumbers

from schemas.calendar import DEFAULT_HOURS, Calendar, CalendarError, WeeklyHours, parse_hours

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_KEY_PREFIX = "callq"
DEFAULT_CONFIG_NAME = "callq.toml"
DEFAULT_PORTAL = "default"
DEFAULT_TOKEN_URL = "https://oauth.bitrix.info/oauth/token/"
MAX_TEXT_CHARS = 2000

OVERRIDE_KEYS = frozenset({"redis_url", "key_prefix", "config_path"})
_TOP_KEYS = frozenset(
    {"redis_url", "key_prefix", "api_tokens", "portals", "outcome_retention", "outcomes_maxlen"}
)
_PORTAL_KEYS = frozenset(
    {"webhook_url", "oauth", "timezone", "default_region", "rate", "burst", "holidays", "closed_dates"}
    | {"max_attempts", "dedupe_window", "default_deadline", "retry_unknown", "hours", "lines"}
)
_LINE_KEYS = frozenset({"hours", "min_interval", "text_to_pronounce", "voice"})
_OAUTH_KEYS = frozenset({"client_id", "client_secret", "refresh_token", "domain", "token_url"})
# Secrets a portal may take from CALLQ_PORTAL_<NAME>_<SUFFIX> instead of the file.
_ENV_SECRETS = {
    "WEBHOOK_URL": "webhook_url",
    "OAUTH_CLIENT_SECRET": "client_secret",
    "OAUTH_REFRESH_TOKEN": "refresh_token",
}
_UTC = ZoneInfo("UTC")
_PORTAL_NAME = re.compile(r"[a-z0-9_-]+")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DOMAIN = re.compile(r"[A-Za-z0-9.-]+(:\d+)?")
_REST_PATH = re.compile(r"(?P<head>.*/rest/[^/]+/)(?P<code>[^/]+)(?P<tail>/.*)?")


class ConfigError(Exception):
    """The configuration is invalid; the message names where (file or variable) and the key.

    Attributes:
        source: The file, environment variable or `command line` the bad value came from.
        key: Dotted TOML key such as `portals.acme.rate`, or None.
        detail: What is wrong, without source and key.
    """

    def __init__(self, detail: str, *, source: str | None = None, key: str | None = None) -> None:
        self.source, self.key, self.detail = source, key, detail
        super().__init__(": ".join(part for part in (source, key, detail) if part))


class UnknownPortalError(ConfigError, LookupError):
    """A portal was asked for by a name that is not configured, or none was named among several.

    Attributes:
        name: The name asked for (None when none was given).
        known: The configured portal names.
    """

    def __init__(self, name: str | None, known: Sequence[str]) -> None:
        self.name, self.known = name, tuple(known)
        listing = ", ".join(self.known)
        if name is not None:
            detail = f'unknown portal "{name}" (configured: {listing or "none"})'
        elif not self.known:
            detail = "no portal is configured (set CALLQ_WEBHOOK_URL or add a [portals.NAME] table)"
        else:
            detail = f"several portals are configured ({listing}); name one"
        super().__init__(detail)


def _is_loopback(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def redact_webhook_url(url: str) -> str:
    """Hide the secret code of a Bitrix24 webhook URL.

    Args:
        url: For example `https://acme.bitrix24.ru/rest/1/s3cr3t/`.

    Returns:
        `https://acme.bitrix24.ru/rest/1/***/`; a path not shaped `/rest/<user>/<code>/` is hidden
        whole, and so are credentials and a query.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return "***"
    if not parts.scheme or not parts.netloc:
        return "***"
    match = _REST_PATH.fullmatch(parts.path)
    if match:
        path = f"{match['head']}***{match['tail'] or ''}"
    else:
        path = parts.path if parts.path in ("", "/") else "/***"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, path, "***" if parts.query else "", ""))


def redact_redis_url(url: str) -> str:
    """Hide the password (and any query) of a Redis URL, e.g. `redis://:***@cache:6379/0`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "***"
    userinfo, at, host = parts.netloc.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        host = f"{user}:***@{host}" if colon else f"***@{host}"
    return urlunsplit((parts.scheme, host, parts.path, "***" if parts.query else "", ""))


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


@dataclass(frozen=True)
class LineConfig:
    """Per-line overrides from `[portals.NAME.lines.LINE]`; unset fields fall back to the portal.

    Attributes:
        line_id: The FROM_LINE as Bitrix24 names it (`reg1332`).
        hours: Weekly hours replacing the portal's for this line, or None.
        min_interval_s: Seconds between two callbacks started on this line.
        text_to_pronounce: Default TEXT_TO_PRONOUNCE for jobs that give none.
        voice: Default VOICE.
    """

    line_id: str
    hours: WeeklyHours | None = None
    min_interval_s: float = 0.0
    text_to_pronounce: str | None = None
    voice: str | None = None


@dataclass(frozen=True)
class OAuthConfig:
    """An OAuth 2.0 application of a portal (`[portals.NAME.oauth]`), used instead of a webhook."""

    client_id: str
    client_secret: str = field(repr=False)
    refresh_token: str = field(repr=False)
    domain: str
    token_url: str = DEFAULT_TOKEN_URL


@dataclass(frozen=True)
class PortalConfig:
    """One Bitrix24 portal: credentials, rate limit, business calendar, retry and dedupe policy.

    Attributes:
        name: `[a-z0-9_-]+`.
        webhook_url: Inbound webhook base URL ending in `/` (hidden from repr), or None with `oauth`.
        oauth: OAuth application, or None with `webhook_url`; exactly one of the two is set.
        timezone: Zone of the business hours and closed dates.
        default_region: Upper-case ISO 3166 region for numbers without a country code.
        rate: Requests per second to the portal, all workers together; `burst` is the bucket size.
        holidays: `holidays` country code (`RU`, `US-CA`) whose public holidays are closed.
        closed_dates: Extra closed local dates.
        max_attempts: Tries before a transient failure becomes dead.
        dedupe_window_s: Seconds after success in which the same line and number is a duplicate.
        default_deadline_s: Seconds a job stays callable, counted from its first open moment.
        retry_unknown: Re-send an attempt whose result is unknown (may ring twice).
        hours: Weekly business hours of every line without its own.
        lines: Line id -> overrides (read-only).
    """

    name: str
    webhook_url: str | None = field(default=None, repr=False)
    oauth: OAuthConfig | None = None
    timezone: ZoneInfo = _UTC
    default_region: str | None = None
    rate: float = 2.0
    burst: int = 50
    holidays: str | None = None
    closed_dates: frozenset[date] = frozenset()
    max_attempts: int = 5
    dedupe_window_s: float = 600
    default_deadline_s: float = 86400
    retry_unknown: bool = False
    hours: WeeklyHours = field(default_factory=lambda: DEFAULT_HOURS)
    lines: Mapping[str, LineConfig] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if (self.webhook_url is None) == (self.oauth is None):
            raise ValueError(f"portal {self.name!r} needs exactly one of webhook_url and oauth")

    def line(self, line_id: str) -> LineConfig:
        """Return the configured overrides of a line, or defaults for a line not configured."""
        return self.lines.get(line_id) or LineConfig(line_id)

    def calendar_for(self, line_id: str) -> Calendar:
        """Build a line's calendar: its own hours if set, else the portal's; zone and closed days from the portal."""
        line_hours = self.line(line_id).hours
        return Calendar(
            tz=self.timezone,
            weekly=self.hours if line_hours is None else line_hours,
            closed_dates=self.closed_dates,
            holiday_country=self.holidays,
        )


@dataclass(frozen=True, repr=False)
class Settings:
    """Everything callq is configured with, loaded once by `load_settings`.

    Attributes:
        redis_url: Redis to use (its password is hidden from repr).
        key_prefix: Prefix `{p}` of every Redis key.
        config_path: The TOML file actually read, or None.
        api_tokens: Bearer tokens accepted by `callq serve` (hidden from repr).
        portals: Portal name -> portal (read-only).
        outcome_retention_s: Extension: seconds a finished job's record and outcome stay readable by id.
        outcomes_maxlen: Extension: approximate MAXLEN of the `{p}:outcomes` stream.
    """

    redis_url: str = DEFAULT_REDIS_URL
    key_prefix: str = DEFAULT_KEY_PREFIX
    config_path: Path | None = None
    api_tokens: tuple[str, ...] = ()
    portals: Mapping[str, PortalConfig] = field(default_factory=lambda: MappingProxyType({}))
    outcome_retention_s: float = 7 * 86400
    outcomes_maxlen: int = 1_000_000

    def __repr__(self) -> str:
        return (
            f"Settings(redis_url={redact_redis_url(self.redis_url)!r}, key_prefix={self.key_prefix!r}, "
            f"config_path={self.config_path!r}, api_tokens=<{len(self.api_tokens)} hidden>, "
            f"portals={dict(self.portals)!r}, outcome_retention_s={self.outcome_retention_s!r}, "
            f"outcomes_maxlen={self.outcomes_maxlen!r})"
        )

    def portal(self, name: str | None) -> PortalConfig:
        """Return the named portal, or the only one when `name` is None.

        Raises:
            UnknownPortalError: The name is not configured, or None was given with zero or several portals.
        """
        if name is None and len(self.portals) == 1:
            return next(iter(self.portals.values()))
        if name is not None and name in self.portals:
            return self.portals[name]
        raise UnknownPortalError(name, list(self.portals))


@dataclass(frozen=True)
class _EnvSecret:
    value: str = field(repr=False)
    var: str


def _env_name(portal: str) -> str:
    return portal.upper().replace("-", "_")


def _env_secrets(env: Mapping[str, str], names: Sequence[str]) -> dict[str, dict[str, _EnvSecret]]:
    """Portal name -> field -> secret given by CALLQ_WEBHOOK_URL or CALLQ_PORTAL_<NAME>_<SUFFIX>."""
    by_env_name: dict[str, list[str]] = {}
    for name in names:
        by_env_name.setdefault(_env_name(name), []).append(name)
    found: dict[str, dict[str, _EnvSecret]] = {}
    if "CALLQ_WEBHOOK_URL" in env:
        found[DEFAULT_PORTAL] = {
            "webhook_url": _EnvSecret(env["CALLQ_WEBHOOK_URL"].strip(), "CALLQ_WEBHOOK_URL")
        }
    # The shortcut goes in first so that CALLQ_PORTAL_DEFAULT_WEBHOOK_URL, more specific, overrides it.
    for var, value in sorted(env.items()):
        suffix = next(
            (s for s in _ENV_SECRETS if var.startswith("CALLQ_PORTAL_") and var.endswith(f"_{s}")), None
        )
        if suffix is None:
            continue
        env_name = var[len("CALLQ_PORTAL_") : -len(suffix) - 1].upper()
        matches = by_env_name.get(env_name, [])
        if len(matches) > 1:
            raise ConfigError(f"matches portals {', '.join(matches)}; rename one of them", source=var)
        name = matches[0] if matches else env_name.lower()
        if not _PORTAL_NAME.fullmatch(name):
            raise ConfigError("names no portal: expected CALLQ_PORTAL_<NAME>_" + suffix, source=var)
        found.setdefault(name, {})[_ENV_SECRETS[suffix]] = _EnvSecret(value.strip(), var)
    return found


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
    if parts.scheme == "http" and not _is_loopback(host):
        fail("must use https (plain http is allowed only for localhost)")
    if parts.query or parts.fragment:
        fail("must not have a query or fragment")
    return url


def _webhook_url(table: _Table, secret: _EnvSecret | None) -> str | None:
    value: object
    if secret is not None:
        value, source, key = secret.value, secret.var, None
    elif "webhook_url" in table.data:
        value, source, key = table.data["webhook_url"], table.file, table.key("webhook_url")
    else:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(
            "must be a webhook URL like https://acme.bitrix24.ru/rest/1/<code>/", source=source, key=key
        )
    url = _checked_url(value.strip(), source=source, key=key, shown=redact_webhook_url(value))
    return url if url.endswith("/") else f"{url}/"


def _oauth(table: _Table, name: str, secrets: Mapping[str, _EnvSecret]) -> OAuthConfig | None:
    oauth = table.table("oauth")
    env_only = [secret for key, secret in secrets.items() if key != "webhook_url"]
    if oauth is None:
        if env_only:
            raise ConfigError(f"portal {name} has no [portals.{name}.oauth] table", source=env_only[0].var)
        return None
    oauth.check_keys(_OAUTH_KEYS)

    def secret(key: str) -> str:
        if key in secrets:
            return secrets[key].value
        hint = f"is required (or set CALLQ_PORTAL_{_env_name(name)}_OAUTH_{key.upper()})"
        return oauth.string(key, secret=True) or oauth.fail(key, hint)

    domain = oauth.string("domain") or oauth.fail("domain", 'is required, e.g. "acme.bitrix24.ru"')
    if not _DOMAIN.fullmatch(domain):
        oauth.fail("domain", f'must be a host name like "acme.bitrix24.ru", got {_show(domain)}')
    token_url = oauth.string("token_url") or DEFAULT_TOKEN_URL
    _checked_url(token_url, source=oauth.file, key=oauth.key("token_url"), shown=_show(token_url))
    return OAuthConfig(
        client_id=oauth.string("client_id") or oauth.fail("client_id", "is required"),
        client_secret=secret("client_secret"),
        refresh_token=secret("refresh_token"),
        domain=domain,
        token_url=token_url,
    )


def _timezone(table: _Table, default: ZoneInfo) -> ZoneInfo:
    name = table.string("timezone")
    try:
        return default if name is None else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        table.fail("timezone", f'must be an IANA time zone name like "Europe/Moscow", got {_show(name)}')


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
        line.check_keys(_LINE_KEYS)
        configs[line_id] = LineConfig(
            line_id=line_id,
            hours=line.hours("hours"),
            min_interval_s=line.number("min_interval", 0.0),
            text_to_pronounce=line.string("text_to_pronounce", max_chars=MAX_TEXT_CHARS),
            voice=line.string("voice"),
        )
    return configs


def _portal(table: _Table, name: str, secrets: Mapping[str, _EnvSecret]) -> PortalConfig:
    table.check_keys(_PORTAL_KEYS)
    webhook_url = _webhook_url(table, secrets.get("webhook_url"))
    oauth = _oauth(table, name, secrets)
    if webhook_url is not None and oauth is not None:
        origin = secrets["webhook_url"].var if "webhook_url" in secrets else "webhook_url"
        table.fail(None, f"has both a webhook URL ({origin}) and an oauth table; keep one")
    if webhook_url is None and oauth is None:
        table.fail(
            None, f"needs webhook_url (or CALLQ_PORTAL_{_env_name(name)}_WEBHOOK_URL) or an oauth table"
        )
    base = PortalConfig(name=name, webhook_url=webhook_url, oauth=oauth)  # holds the defaults
    hours = table.hours("hours")
    return PortalConfig(
        name=name,
        webhook_url=webhook_url,
        oauth=oauth,
        timezone=_timezone(table, base.timezone),
        default_region=_region(table),
        rate=table.number("rate", base.rate, positive=True),
        burst=table.integer("burst", base.burst, at_least=1),
        holidays=_holidays(table),
        closed_dates=_closed_dates(table),
        max_attempts=table.integer("max_attempts", base.max_attempts, at_least=1),
        dedupe_window_s=table.number("dedupe_window", base.dedupe_window_s),
        default_deadline_s=table.number("default_deadline", base.default_deadline_s, positive=True),
        retry_unknown=table.boolean("retry_unknown", base.retry_unknown),
        hours=base.hours if hours is None else hours,
        lines=MappingProxyType(_lines(table)),
    )


def _portals(top: _Table, env: Mapping[str, str]) -> dict[str, PortalConfig]:
    portals = top.table("portals") or _Table({}, top.file, "portals")
    for name in portals.data:
        if not _PORTAL_NAME.fullmatch(name):
            portals.fail(name, "portal names must match [a-z0-9_-]+")
    secrets = _env_secrets(env, list(portals.data))
    names = [*portals.data, *(name for name in secrets if name not in portals.data)]
    return {
        name: _portal(
            portals.table(name) or _Table({}, top.file, f"portals.{name}"), name, secrets.get(name, {})
        )
        for name in names
    }


def _locate(flag: object, env: Mapping[str, str], cwd: Path) -> tuple[Path | None, str]:
    """Find the TOML file: flag, then CALLQ_CONFIG, then ./callq.toml if it exists."""
    if flag is not None:
        if not isinstance(flag, str | Path):
            raise ConfigError(f"must be a path, got {_show(flag)}", source="command line", key="config_path")
        given, source = Path(flag), "command line"
    elif "CALLQ_CONFIG" in env:
        given, source = Path(env["CALLQ_CONFIG"]), "CALLQ_CONFIG"
    else:
        default = cwd / DEFAULT_CONFIG_NAME
        return (default if default.is_file() else None), DEFAULT_CONFIG_NAME
    path = given if given.is_absolute() else cwd / given
    if not path.is_file():
        problem = "is not a file" if path.exists() else "does not exist"
        raise ConfigError(f"config file {given} {problem}", source=source)
    return path, str(given)


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


def _choose(
    flags: Mapping[str, object], env: Mapping[str, str], top: _Table, key: str, var: str, default: object
) -> tuple[object, str, str | None]:
    """Pick a value by precedence; return it with the source and key to name in an error."""
    if key in flags:
        return flags[key], "command line", key
    if var in env:
        return env[var], var, None
    if key in top.data:
        return top.data[key], top.file, key
    return default, "default", key


def _redis_url(value: object, source: str, key: str | None) -> str:
    scheme, separator, _ = value.strip().partition("://") if isinstance(value, str) else ("", "", "")
    if separator and scheme in ("redis", "rediss", "unix"):
        return str(value).strip()
    shown = _show(redact_redis_url(value) if isinstance(value, str) else value)
    raise ConfigError(f"must be a redis://, rediss:// or unix:// URL, got {shown}", source=source, key=key)


def _key_prefix(value: object, source: str, key: str | None) -> str:
    if isinstance(value, str) and value and not any(char.isspace() or char in "{}" for char in value):
        return value
    raise ConfigError(
        f"must be non-empty, without whitespace or braces, got {_show(value)}", source=source, key=key
    )


def _api_tokens(env: Mapping[str, str], top: _Table) -> tuple[str, ...]:
    if "CALLQ_API_TOKENS" in env:
        return tuple(token.strip() for token in env["CALLQ_API_TOKENS"].split(",") if token.strip())
    value = top.data.get("api_tokens", [])
    if not isinstance(value, list) or not all(isinstance(token, str) and token.strip() for token in value):
        top.fail("api_tokens", "must be a list of non-empty strings")  # never echo a token
    return tuple(token.strip() for token in value)


def _env_or_toml(env: Mapping[str, str], var: str, top: _Table, key: str) -> _Table:
    """The table to read `key` from: a one-entry table for the variable if it is set, else the file."""
    if var not in env:
        return top
    text: object = env[var].strip()
    for parse in (int, float):
        try:
            text = parse(str(text))
            break
        except ValueError:
            continue
    return _Table({key: text}, var, show_key=False)


def load_settings(
    environ: Mapping[str, str],
    *,
    overrides: Mapping[str, object] | None = None,
    config_path: Path | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Load the settings once: command-line flag > environment variable > TOML file > default.

    Args:
        environ: The environment (the CLI passes `os.environ`); only `CALLQ_*` variables are read
            and an empty one counts as unset.
        overrides: Command-line flags: `redis_url`, `key_prefix`, `config_path`; None values are
            ignored.
        config_path: The TOML file to read, like the `config_path` flag.
        cwd: Directory that relative paths and the default `./callq.toml` are resolved against
            (default: the process's working directory).

    Returns:
        Frozen settings. Zero portals is allowed; `Settings.portal()` then raises.

    Raises:
        ConfigError: One message naming the file (or variable) and the key; no secret in it.
    """
    flags = {key: value for key, value in (overrides or {}).items() if value is not None}
    if unknown := sorted(set(flags) - OVERRIDE_KEYS):
        raise ConfigError(f"unknown option {', '.join(unknown)}", source="command line")
    env = {var: value for var, value in environ.items() if var.startswith("CALLQ_") and value.strip()}
    base = Path.cwd() if cwd is None else cwd
    path, file = _locate(flags.get("config_path", config_path), env, base)
    top = _Table(_read_toml(path, file) if path is not None else {}, file)
    top.check_keys(_TOP_KEYS)
    retention = _env_or_toml(env, "CALLQ_OUTCOME_RETENTION", top, "outcome_retention")
    maxlen = _env_or_toml(env, "CALLQ_OUTCOMES_MAXLEN", top, "outcomes_maxlen")
    defaults = Settings()
    return Settings(
        redis_url=_redis_url(*_choose(flags, env, top, "redis_url", "CALLQ_REDIS_URL", defaults.redis_url)),
        key_prefix=_key_prefix(
            *_choose(flags, env, top, "key_prefix", "CALLQ_KEY_PREFIX", defaults.key_prefix)
        ),
        config_path=path,
        api_tokens=_api_tokens(env, top),
        portals=MappingProxyType(_portals(top, env)),
        outcome_retention_s=retention.number(
            "outcome_retention", defaults.outcome_retention_s, positive=True
        ),
        outcomes_maxlen=maxlen.integer("outcomes_maxlen", defaults.outcomes_maxlen, at_least=1),
    )
