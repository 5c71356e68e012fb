"""CALLQ_* environment variables and precedence: command-line flag > environment > TOML > default.

Locates the TOML file, picks each top-level setting by precedence, and builds every portal from its
`[portals.NAME]` table plus the secrets the environment supplies (`CALLQ_WEBHOOK_URL`,
`CALLQ_PORTAL_<NAME>_WEBHOOK_URL`, `CALLQ_PORTAL_<NAME>_OAUTH_*`). Single values are validated by
the `schemas.config.toml` readers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from schemas.config.calls import line_redials, read_calls
from schemas.config.settings import (
    DEFAULT_CONFIG_NAME,
    DEFAULT_PORTAL,
    DEFAULT_TOKEN_URL,
    ConfigError,
    OAuthConfig,
    PortalConfig,
)
from schemas.config.toml import (
    _OAUTH_KEYS,
    _PORTAL_KEYS,
    ZONE_EXAMPLE,
    _checked_url,
    _closed_dates,
    _holidays,
    _lines,
    _region,
    _show,
    _Table,
    _timezone,
    zone_of,
)
from schemas.policy.redact import redact_redis_url, redact_webhook_url
from schemas.store.connect import parse_sentinel_url

# Secrets a portal may take from CALLQ_PORTAL_<NAME>_<SUFFIX> instead of the file.
_ENV_SECRETS = {
    "WEBHOOK_URL": "webhook_url",
    "OAUTH_CLIENT_SECRET": "client_secret",
    "OAUTH_REFRESH_TOKEN": "refresh_token",
    "EVENT_TOKEN": "event_token",
}
_TIMEZONE_VAR = "CALLQ_TIMEZONE"
"""The time zone of portal ``default``, the one ``CALLQ_WEBHOOK_URL`` configures."""
_PORTAL_NAME = re.compile(r"[a-z0-9_-]+")
_DOMAIN = re.compile(r"[A-Za-z0-9.-]+(:\d+)?")


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
    env_only = [secret for key, secret in secrets.items() if key not in ("webhook_url", "event_token")]
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
    _checked_url(token_url, source=oauth.file, key=oauth.key("token_url"), shown=_shown_url(token_url))
    return OAuthConfig(
        client_id=oauth.string("client_id") or oauth.fail("client_id", "is required"),
        client_secret=secret("client_secret"),
        refresh_token=secret("refresh_token"),
        domain=domain,
        token_url=token_url,
    )


def _portal(
    table: _Table, name: str, secrets: Mapping[str, _EnvSecret], env: Mapping[str, str]
) -> PortalConfig:
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
    timezone = _portal_timezone(table, name, secrets, env)
    base = PortalConfig(name=name, webhook_url=webhook_url, oauth=oauth, timezone=timezone)  # the defaults
    hours = table.hours("hours")
    event_token = secrets.get("event_token")
    calls = read_calls(table.table("calls"), env_token=event_token.value if event_token else None)
    return PortalConfig(
        name=name,
        webhook_url=webhook_url,
        oauth=oauth,
        timezone=timezone,
        default_region=_region(table),
        rate=table.number("rate", base.rate, positive=True),
        burst=table.integer("burst", base.burst, at_least=1),
        holidays=_holidays(table),
        closed_dates=_closed_dates(table),
        max_attempts=table.integer("max_attempts", base.max_attempts, at_least=1),
        dedupe_window_s=table.number("dedupe_window", base.dedupe_window_s),
        default_deadline_s=table.number("default_deadline", base.default_deadline_s, positive=True),
        retry_unknown=table.boolean("retry_unknown", base.retry_unknown),
        operating_budget_s=table.number("operating_budget", base.operating_budget_s, positive=True),
        calls=calls,
        hours=base.hours if hours is None else hours,
        lines=MappingProxyType(line_redials(table, _lines(table), calls.redial)),
    )


def _portal_timezone(
    table: _Table, name: str, secrets: Mapping[str, _EnvSecret], env: Mapping[str, str]
) -> ZoneInfo:
    """The portal's time zone, which must be configured: a zone callq guessed would let it call at
    3 a.m. local time. ``CALLQ_TIMEZONE`` sets portal ``default``'s (the ``CALLQ_WEBHOOK_URL`` one).

    Raises:
        ConfigError: none is configured (naming the key to set), or it is not a zone.
    """
    if name == DEFAULT_PORTAL and _TIMEZONE_VAR in env:
        return zone_of(env[_TIMEZONE_VAR].strip(), source=_TIMEZONE_VAR, key=None)
    zone = _timezone(table)
    if zone is not None:
        return zone
    what = f"{ZONE_EXAMPLE}; business hours are read in it, and callq never guesses a zone"
    webhook = secrets.get("webhook_url")
    if (
        name == DEFAULT_PORTAL
        and webhook is not None
        and webhook.var == "CALLQ_WEBHOOK_URL"
        and not table.data
    ):
        raise ConfigError(f"is required with CALLQ_WEBHOOK_URL: {what}", source=_TIMEZONE_VAR)
    if not table.data and secrets:  # a portal only the environment names: its zone goes in the file
        raise ConfigError(
            f'portal {name} needs a time zone: add timezone = "Europe/Moscow" (or "UTC", on purpose) '
            f"under [portals.{name}] in the TOML file",
            source=next(iter(secrets.values())).var,
        )
    table.fail("timezone", f"is required: {what}")


def _portals(top: _Table, env: Mapping[str, str]) -> dict[str, PortalConfig]:
    portals = top.table("portals") or _Table({}, top.file, "portals")
    for name in portals.data:
        if not _PORTAL_NAME.fullmatch(name):
            portals.fail(name, "portal names must match [a-z0-9_-]+")
    secrets = _env_secrets(env, list(portals.data))
    names = [*portals.data, *(name for name in secrets if name not in portals.data)]
    if _TIMEZONE_VAR in env and DEFAULT_PORTAL not in names:
        raise ConfigError(
            f"sets the time zone of portal {DEFAULT_PORTAL} (the CALLQ_WEBHOOK_URL shortcut), which is not "
            "configured; name the zone of other portals in their [portals.NAME] table",
            source=_TIMEZONE_VAR,
        )
    return {
        name: _portal(
            portals.table(name) or _Table({}, top.file, f"portals.{name}"), name, secrets.get(name, {}), env
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
    if separator and scheme == "redis+sentinel":
        try:
            parse_sentinel_url(str(value).strip())
        except ValueError as exc:
            raise ConfigError(str(exc), source=source, key=key) from None
        return str(value).strip()
    shown = _show(redact_redis_url(value) if isinstance(value, str) else value)
    raise ConfigError(
        f"must be a redis://, rediss://, unix:// or redis+sentinel:// URL, got {shown}",
        source=source,
        key=key,
    )


def _key_prefix(value: object, source: str, key: str | None) -> str:
    if isinstance(value, str) and value and not any(char.isspace() or char in "{}" for char in value):
        return value
    raise ConfigError(
        f"must be non-empty, without whitespace or braces, got {_show(value)}", source=source, key=key
    )


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


def _shown_url(url: str) -> str:
    """A URL as a configuration error may show it: ``scheme://host[:port]/path``, quoted. User info,
    query and fragment are left out (a token endpoint's query may carry a client secret)."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "a value that is not a URL (not shown)"
    where = f"[{host}]" if host and ":" in host else host or ""
    return _show(f"{parts.scheme}://{where}{f':{port}' if port else ''}{parts.path}")
