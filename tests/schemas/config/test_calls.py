"""`[portals.NAME.calls]` and a line's redial keys, read from TOML and the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.config import ConfigError, Settings, load_settings
from schemas.policy.call_result import CallKind
from schemas.policy.redial import RedialPolicy

HEAD = """
[portals.acme]
webhook_url = "https://acme.bitrix24.ru/rest/1/abcdefgh/"
timezone = "Europe/Moscow"
"""


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Settings:
    path = tmp_path / "callq.toml"
    path.write_text(HEAD + text)
    return load_settings({"CALLQ_CONFIG": str(path), **(env or {})})


def test_defaults(tmp_path: Path) -> None:
    """Without a [calls] table calls are followed, no event token is set, busy/no answer/unavailable redial twice."""
    settings = _load(tmp_path, "")
    portal = settings.portals["acme"]
    assert portal.calls.follow is True
    assert portal.calls.event_token is None
    assert portal.redial_for("reg1332") == RedialPolicy()


def test_calls_table_and_line_override(tmp_path: Path) -> None:
    """The portal's table sets the policy; a line replaces only the keys it names."""
    text = """
[portals.acme.calls]
follow = true
first_poll = 5
horizon = 600
event_token = "tok-123456"
redial_on = ["busy"]
redial_delays = [60, 120]
max_redials = 3

[portals.acme.lines.reg1332]
max_redials = 1
"""
    portal = _load(tmp_path, text).portals["acme"]
    assert portal.calls.timing.first_poll_s == 5
    assert portal.calls.timing.horizon_s == 600
    assert portal.calls.event_token == "tok-123456"
    assert "tok-123456" not in repr(portal)
    assert portal.redial_for("other") == RedialPolicy(frozenset({CallKind.BUSY}), (60.0, 120.0), 3)
    assert portal.redial_for("reg1332") == RedialPolicy(frozenset({CallKind.BUSY}), (60.0, 120.0), 1)


def test_event_token_from_env(tmp_path: Path) -> None:
    """CALLQ_PORTAL_<NAME>_EVENT_TOKEN gives the event token without writing it in the file."""
    settings = _load(tmp_path, "", env={"CALLQ_PORTAL_ACME_EVENT_TOKEN": "from-env-token"})
    assert settings.portals["acme"].calls.event_token == "from-env-token"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[portals.acme.calls]\nredial_on = ["declined"]', "redial_on"),
        ('[portals.acme.calls]\nredial_on = ["connected"]', "redial_on"),
        ("[portals.acme.calls]\nredial_delays = []", "redial_delays"),
        ("[portals.acme.calls]\nmax_redials = -1", "max_redials"),
        ("[portals.acme.calls]\nhorizon = 0", "horizon"),
        ("[portals.acme.calls]\nredail = 1", "redail"),
        ('[portals.acme.calls]\nevent_token = ""', "event_token"),
    ],
)
def test_bad_values(tmp_path: Path, text: str, message: str) -> None:
    """A bad value names its key; a declined or connected call can never be set to redial."""
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, text)
