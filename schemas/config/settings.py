"""Configuration types: the frozen settings objects, their errors and defaults (URL masking: `schemas.policy.redact`).

`schemas.config` re-exports everything public here; import from there. This module sits at the
bottom of the configuration modules (`toml`, `env` and the package import it, it imports
none of them), so the readers can build these objects without an import cycle.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo

from schemas.policy.calendar import Calendar
from schemas.policy.followup import FollowTiming
from schemas.policy.hours import DEFAULT_HOURS, WeeklyHours
from schemas.policy.redact import redact_redis_url
from schemas.policy.redial import RedialPolicy

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
DEFAULT_KEY_PREFIX = "callq"
DEFAULT_CONFIG_NAME = "callq.toml"
DEFAULT_PORTAL = "default"
DEFAULT_TOKEN_URL = "https://oauth.bitrix.info/oauth/token/"
MAX_TEXT_CHARS = 2000
MIN_API_TOKEN_CHARS = 16
"""A bearer token of ``callq serve`` is all that stands between the network and ringing phones: at
least 16 characters (``openssl rand -hex 32`` makes a good one), so that it cannot be guessed."""

DEFAULT_OPERATING_BUDGET_S = 480.0
"""Bitrix24's per-method execution-time limit: more than 480 s within 10 minutes blocks the method
(its REST limits page; the value is the portal's configuration, 480 s the documented one)."""


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


def check_api_tokens(tokens: Sequence[str], *, source: str | None, key: str | None) -> None:
    """Refuse bearer tokens shorter than :data:`MIN_API_TOKEN_CHARS` (a configuration error that
    names the key and which token by position, never the token itself).

    Raises:
        ConfigError: a token is too short.
    """
    for position, token in enumerate(tokens, start=1):
        if len(token) < MIN_API_TOKEN_CHARS:
            which = f"token {position} of {len(tokens)}" if len(tokens) > 1 else "the token"
            raise ConfigError(
                f"every token must be at least {MIN_API_TOKEN_CHARS} characters long ({which} is shorter); "
                "make one with `openssl rand -hex 32`",
                source=source,
                key=key,
            )


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


@dataclass(frozen=True)
class LineConfig:
    """Per-line overrides from `[portals.NAME.lines.LINE]`; unset fields fall back to the portal.

    Attributes:
        line_id: The FROM_LINE as Bitrix24 names it (`reg1332`).
        hours: Weekly hours replacing the portal's for this line, or None.
        min_interval_s: Seconds between two callbacks started on this line.
        text_to_pronounce: Default TEXT_TO_PRONOUNCE for jobs that give none.
        voice: Default VOICE.
        redial: The line's redial policy, replacing the portal's (`redial_on`, `redial_delays`,
            `max_redials` in the line's table), or None.
    """

    line_id: str
    hours: WeeklyHours | None = None
    min_interval_s: float = 0.0
    text_to_pronounce: str | None = None
    voice: str | None = None
    redial: RedialPolicy | None = None


@dataclass(frozen=True)
class CallsConfig:
    """Following each callback's call to its end (`[portals.NAME.calls]`, an extension).

    Attributes:
        follow: Find out how each accepted callback's call ended (pull, and push when an event
            token is set); off: `succeeded` is the last word, as before.
        timing: When `voximplant.statistic.get` is asked, and the horizon after which the result
            is `unknown`.
        event_token: The `application_token` the portal's `OnVoximplantCallEnd` events carry
            (hidden from repr); None: pushed events are refused, pull alone is used.
        redial: Which results redial, after which delays, how many times.
    """

    follow: bool = True
    timing: FollowTiming = field(default_factory=FollowTiming)
    event_token: str | None = field(default=None, repr=False)
    redial: RedialPolicy = field(default_factory=RedialPolicy)


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
        timezone: Zone of the business hours and closed dates. Required, keyword-only: a portal
            without one would call by another zone's clock (configure `"UTC"` on purpose).
        default_region: Upper-case ISO 3166 region for numbers without a country code.
        rate: Requests per second to the portal, all workers together; `burst` is the bucket size.
        holidays: `holidays` country code (`RU`, `US-CA`) whose public holidays are closed.
        closed_dates: Extra closed local dates.
        max_attempts: Tries before a transient failure becomes dead.
        dedupe_window_s: Seconds after success in which the same line and number is a duplicate.
        default_deadline_s: Seconds a job stays callable, counted from its first open moment.
        retry_unknown: Re-send an attempt whose result is unknown (may ring twice).
        operating_budget_s: Seconds of `voximplant.callback.start` execution time Bitrix24 allows
            per 10 minutes (its `operating` limit); callq pauses the method before it is spent.
        calls: Following each call to its end, and redialling (`[portals.NAME.calls]`).
        hours: Weekly business hours of every line without its own.
        lines: Line id -> overrides (read-only).
    """

    name: str
    webhook_url: str | None = field(default=None, repr=False)
    oauth: OAuthConfig | None = None
    timezone: ZoneInfo = field(kw_only=True)
    default_region: str | None = None
    rate: float = 2.0
    burst: int = 50
    holidays: str | None = None
    closed_dates: frozenset[date] = frozenset()
    max_attempts: int = 5
    dedupe_window_s: float = 600
    default_deadline_s: float = 86400
    retry_unknown: bool = False
    operating_budget_s: float = DEFAULT_OPERATING_BUDGET_S
    calls: CallsConfig = field(default_factory=CallsConfig)
    hours: WeeklyHours = field(default_factory=lambda: DEFAULT_HOURS)
    lines: Mapping[str, LineConfig] = field(default_factory=lambda: MappingProxyType({}))

    def __post_init__(self) -> None:
        if (self.webhook_url is None) == (self.oauth is None):
            raise ValueError(f"portal {self.name!r} needs exactly one of webhook_url and oauth")

    def line(self, line_id: str) -> LineConfig:
        """Return the configured overrides of a line, or defaults for a line not configured."""
        return self.lines.get(line_id) or LineConfig(line_id)

    def redial_for(self, line_id: str) -> RedialPolicy:
        """The line's redial policy: its own if set, else the portal's."""
        return self.line(line_id).redial or self.calls.redial

    def calendar_for(self, line_id: str) -> Calendar:
        """A line's calendar: its own hours if set, else the portal's; zone and closed days from the
        portal. Built once per line with hours of its own, and once for all the others (a job's
        run asks for it two or three times)."""
        return self._calendars.get(line_id) or self._calendars[None]

    @functools.cached_property
    def _calendars(self) -> dict[str | None, Calendar]:
        """The calendars of the lines with hours of their own, and the portal's (under None)."""
        calendars: dict[str | None, Calendar] = {
            line_id: self._calendar(line.hours)
            for line_id, line in self.lines.items()
            if line.hours is not None
        }
        calendars[None] = self._calendar(self.hours)
        return calendars

    def _calendar(self, weekly: WeeklyHours) -> Calendar:
        return Calendar(
            tz=self.timezone, weekly=weekly, closed_dates=self.closed_dates, holiday_country=self.holidays
        )


TokenAccess = Literal["read", "write"]
"""``read``: GET a job; ``write``: also POST and DELETE."""

_FINGERPRINT_SALT = b"callq api token fingerprint"
_FINGERPRINT_ROUNDS = 20_000


def token_fingerprint(token: str) -> str:
    """How logs name a token of the plain ``api_tokens`` list: ``fp:`` and 8 hex digits.

    A slow, salted hash cut to 32 bits: the same token always gets the same name, and the name
    cannot be turned back into the token (so many strings share it that it says nothing about one).
    """
    digest = hashlib.pbkdf2_hmac("sha256", token.encode(), _FINGERPRINT_SALT, _FINGERPRINT_ROUNDS)
    return f"fp:{digest[:4].hex()}"


@dataclass(frozen=True)
class ApiToken:
    """A bearer token of ``callq serve`` and what it may do.

    Attributes:
        name: what the access log calls it: its ``[api_tokens.NAME]`` table, or for a token of the
            plain list its :func:`token_fingerprint`.
        token: the secret (hidden from repr).
        portals: the portals it may use; None for every portal.
        access: ``read`` (GET) or ``write`` (POST, DELETE and GET).
    """

    name: str
    token: str = field(repr=False)
    portals: frozenset[str] | None = None
    access: TokenAccess = "write"

    def may_see(self, portal: str) -> bool:
        """Whether jobs of ``portal`` exist for this token."""
        return self.portals is None or portal in self.portals

    @property
    def may_write(self) -> bool:
        """Whether it may submit and cancel jobs (on the portals it may see)."""
        return self.access == "write"


@dataclass(frozen=True, repr=False)
class Settings:
    """Everything callq is configured with, loaded once by `load_settings`.

    Attributes:
        redis_url: Redis to use (its password is hidden from repr).
        key_prefix: Prefix `{p}` of every Redis key.
        config_path: The TOML file actually read, or None.
        api_tokens: Bearer tokens of the plain `api_tokens` list (or `CALLQ_API_TOKENS`), each with
            full access: every portal, read and write (hidden from repr).
        named_tokens: Tokens of `[api_tokens.NAME]` tables, with their portals and access.
        portals: Portal name -> portal (read-only).
        outcome_retention_s: Extension: seconds a finished job's record and outcome stay readable by id.
        outcomes_maxlen: Extension: approximate MAXLEN of the `{p}:outcomes` stream.
        start_replicas: Extension: before a request is sent, this many Redis replicas must have
            acknowledged its attempt's START (Redis ``WAIT``), or it is not sent: a failover that
            loses the last writes then cannot lose the record that a request went out. 0: off.
        start_replicas_timeout_s: Extension: how long a START waits for those replicas.
    """

    redis_url: str = DEFAULT_REDIS_URL
    key_prefix: str = DEFAULT_KEY_PREFIX
    config_path: Path | None = None
    api_tokens: tuple[str, ...] = ()
    named_tokens: tuple[ApiToken, ...] = ()
    portals: Mapping[str, PortalConfig] = field(default_factory=lambda: MappingProxyType({}))
    outcome_retention_s: float = 7 * 86400
    outcomes_maxlen: int = 1_000_000
    start_replicas: int = 0
    start_replicas_timeout_s: float = 1.0

    def __repr__(self) -> str:
        return (
            f"Settings(redis_url={redact_redis_url(self.redis_url)!r}, key_prefix={self.key_prefix!r}, "
            f"config_path={self.config_path!r}, api_tokens=<{len(self.api_tokens)} hidden>, "
            f"named_tokens={self.named_tokens!r}, "
            f"portals={dict(self.portals)!r}, outcome_retention_s={self.outcome_retention_s!r}, "
            f"outcomes_maxlen={self.outcomes_maxlen!r}, start_replicas={self.start_replicas!r}, "
            f"start_replicas_timeout_s={self.start_replicas_timeout_s!r})"
        )

    def bearer_tokens(self) -> tuple[ApiToken, ...]:
        """Every token `callq serve` accepts: the plain list's (full access), then the named ones."""
        plain = tuple(ApiToken(name=token_fingerprint(token), token=token) for token in self.api_tokens)
        return plain + self.named_tokens

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
