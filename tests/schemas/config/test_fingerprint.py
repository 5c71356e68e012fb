"""The configuration fingerprint: what it covers, what it names when two differ, what it never holds. Pure."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from schemas.config import LineConfig, OAuthConfig, PortalConfig, Settings
from schemas.config.fingerprint import differences, fingerprint

CODE = "webhookc0de"
KEY = b"k" * 32
ACME = PortalConfig(
    name="acme", webhook_url=f"https://acme.bitrix24.ru/rest/1/{CODE}/", timezone=ZoneInfo("UTC")
)
SETTINGS = Settings(portals=MappingProxyType({"acme": ACME, "beta": dataclasses.replace(ACME, name="beta")}))


def with_acme(**changes: Any) -> Settings:
    """SETTINGS with portal acme changed."""
    portals = {**SETTINGS.portals, "acme": dataclasses.replace(ACME, **changes)}
    return dataclasses.replace(SETTINGS, portals=MappingProxyType(portals))


def test_the_same_configuration_has_the_same_fingerprint() -> None:
    """Equal settings give equal digests and parts, whatever the order portals were written in."""
    backwards = dict(reversed(list(SETTINGS.portals.items())))
    reordered = dataclasses.replace(SETTINGS, portals=MappingProxyType(backwards))
    assert fingerprint(SETTINGS, credential_key=KEY) == fingerprint(reordered, credential_key=KEY)


def test_a_whole_number_of_seconds_is_one_value_however_written() -> None:
    """600 (a default) and 600.0 (read from a file) are the same setting, not a difference."""
    ints = with_acme(rate=2, dedupe_window_s=600, default_deadline_s=86400)
    floats = with_acme(rate=2.0, dedupe_window_s=600.0, default_deadline_s=86400.0)
    assert fingerprint(ints, credential_key=KEY) == fingerprint(floats, credential_key=KEY)


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"rate": 5.0}, "portals.acme.rate"),
        ({"burst": 250}, "portals.acme.burst"),
        ({"timezone": ZoneInfo("Europe/Moscow")}, "portals.acme.timezone"),
        ({"default_region": "RU"}, "portals.acme.default_region"),
        ({"holidays": "RU"}, "portals.acme.holidays"),
        ({"closed_dates": frozenset({date(2026, 12, 31)})}, "portals.acme.closed_dates"),
        ({"max_attempts": 3}, "portals.acme.max_attempts"),
        ({"dedupe_window_s": 60.0}, "portals.acme.dedupe_window"),
        ({"default_deadline_s": 3600.0}, "portals.acme.default_deadline"),
        ({"retry_unknown": True}, "portals.acme.retry_unknown"),
        ({"hours": MappingProxyType({0: ((540, 1080),)})}, "portals.acme.hours"),
        ({"webhook_url": "https://acme.bitrix24.ru/rest/1/other/"}, "portals.acme.credentials"),
        (
            {"lines": MappingProxyType({"reg1": LineConfig("reg1", min_interval_s=20)})},
            "portals.acme.lines.reg1",
        ),
    ],
)
def test_each_setting_that_decides_jobs_is_a_part(changes: dict[str, Any], key: str) -> None:
    """Changing one setting changes the digest, and the comparison names exactly that key."""
    here, there = (
        fingerprint(SETTINGS, credential_key=KEY),
        fingerprint(with_acme(**changes), credential_key=KEY),
    )
    assert here.digest != there.digest
    assert differences(here.parts, there.parts) == [key]


def test_retention_and_stream_cap_are_parts() -> None:
    """How long records (and so idempotency keys) live, and the outcome stream's cap, must agree too."""
    other = dataclasses.replace(SETTINGS, outcome_retention_s=3600.0, outcomes_maxlen=10)
    here, there = fingerprint(SETTINGS, credential_key=KEY), fingerprint(other, credential_key=KEY)
    assert differences(here.parts, there.parts) == ["outcome_retention", "outcomes_maxlen"]


def test_a_portal_on_one_side_only_is_named_once() -> None:
    """A missing portal is one entry (only here / only there), not one per setting."""
    alone = dataclasses.replace(SETTINGS, portals=MappingProxyType({"acme": ACME}))
    here, there = fingerprint(SETTINGS, credential_key=KEY), fingerprint(alone, credential_key=KEY)
    assert differences(here.parts, there.parts) == ["portals.beta (only here)"]
    assert differences(there.parts, here.parts) == ["portals.beta (only there)"]


def test_no_secret_is_in_the_fingerprint_and_credentials_need_the_key() -> None:
    """Neither a webhook code nor an OAuth secret appears; their digest changes with the deployment's key."""
    oauth = OAuthConfig(
        client_id="app.1", client_secret="cl13nts3cr3t", refresh_token="r3fr3sh", domain="a.ru"
    )
    settings = with_acme(webhook_url=None, oauth=oauth)
    text = json.dumps(dataclasses.asdict(fingerprint(settings, credential_key=KEY)))
    assert CODE not in text and "cl13nts3cr3t" not in text and "r3fr3sh" not in text
    other_key = fingerprint(settings, credential_key=b"j" * 32)
    assert differences(fingerprint(settings, credential_key=KEY).parts, other_key.parts) == [
        "portals.acme.credentials",
        "portals.beta.credentials",
    ]
