"""A portal's time zone is required: callq never guesses one (it would call by another zone's clock)."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from schemas.config import ConfigError, load_settings

WEBHOOK = "https://acme.bitrix24.ru/rest/1/s3cr3t0kenvalue/"
REQUIRED = 'is required: an IANA time zone name like "Europe/Moscow" (or "UTC", on purpose)'


def load(tmp_path: Path, toml: str | None, env: dict[str, str]) -> dict[str, ZoneInfo]:
    """Each portal's zone, from ./callq.toml (if given) and ``env``."""
    if toml is not None:
        (tmp_path / "callq.toml").write_text(toml, encoding="utf-8")
    return {name: portal.timezone for name, portal in load_settings(env, cwd=tmp_path).portals.items()}


def error(tmp_path: Path, toml: str | None, env: dict[str, str]) -> ConfigError:
    """The ConfigError loading raises."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, toml, env)
    return info.value


@pytest.mark.parametrize(
    ("toml", "env", "source", "key", "detail"),
    [
        (
            f'[portals.acme]\nwebhook_url = "{WEBHOOK}"\n',
            {},
            "callq.toml",
            "portals.acme.timezone",
            REQUIRED,
        ),
        (None, {"CALLQ_WEBHOOK_URL": WEBHOOK}, "CALLQ_TIMEZONE", None, "is required with CALLQ_WEBHOOK_URL"),
        (
            None,
            {"CALLQ_PORTAL_BETA_WEBHOOK_URL": WEBHOOK},
            "CALLQ_PORTAL_BETA_WEBHOOK_URL",
            None,
            "portal beta needs a time zone: add timezone =",
        ),
        (
            '[portals.acme.oauth]\nclient_id = "c"\nclient_secret = "s"\nrefresh_token = "r"\ndomain = "a.b"\n',
            {},
            "callq.toml",
            "portals.acme.timezone",
            REQUIRED,
        ),
        (
            None,
            {"CALLQ_WEBHOOK_URL": WEBHOOK, "CALLQ_TIMEZONE": "Moscow"},
            "CALLQ_TIMEZONE",
            None,
            'must be an IANA time zone name like "Europe/Moscow"',
        ),
        (
            f'[portals.acme]\nwebhook_url = "{WEBHOOK}"\ntimezone = "UTC"\n',
            {"CALLQ_TIMEZONE": "UTC"},
            "CALLQ_TIMEZONE",
            None,
            "sets the time zone of portal default",
        ),
    ],
)
def test_a_missing_or_bad_zone_is_an_error_naming_the_key(
    tmp_path: Path, toml: str | None, env: dict[str, str], source: str, key: str | None, detail: str
) -> None:
    """No zone (file, CALLQ_WEBHOOK_URL, an environment-only portal, OAuth) or a bad one stops start-up,
    naming where to set it and never the webhook's secret."""
    exc = error(tmp_path, toml, env)
    assert (exc.source, exc.key) == (source, key)
    assert detail in exc.detail
    assert "s3cr3t0kenvalue" not in str(exc)


@pytest.mark.parametrize(
    ("toml", "env", "zones"),
    [
        (
            None,
            {"CALLQ_WEBHOOK_URL": WEBHOOK, "CALLQ_TIMEZONE": "Europe/Moscow"},
            {"default": "Europe/Moscow"},
        ),
        (
            '[portals.default]\ntimezone = "Asia/Tokyo"\n',
            {"CALLQ_WEBHOOK_URL": WEBHOOK, "CALLQ_TIMEZONE": "Europe/Moscow"},
            {"default": "Europe/Moscow"},
        ),
        (
            '[portals.default]\ntimezone = "Asia/Tokyo"\n',
            {"CALLQ_WEBHOOK_URL": WEBHOOK},
            {"default": "Asia/Tokyo"},
        ),
        (f'[portals.acme]\nwebhook_url = "{WEBHOOK}"\ntimezone = "UTC"\n', {}, {"acme": "UTC"}),
    ],
)
def test_a_zone_given_on_purpose_is_used(
    tmp_path: Path, toml: str | None, env: dict[str, str], zones: dict[str, str]
) -> None:
    """CALLQ_TIMEZONE sets portal default's zone (over the file, as the environment does); "UTC" is accepted
    when written."""
    assert load(tmp_path, toml, env) == {name: ZoneInfo(zone) for name, zone in zones.items()}
