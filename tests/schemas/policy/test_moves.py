"""A portal's move: which configured addresses it applies to and how a URL is rebased. Pure."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from schemas.config import OAuthConfig, PortalConfig
from schemas.policy.moves import PortalMove, configured_origin, origin_of

MOVE = PortalMove("https://acme.bitrix24.ru", "https://acme.bitrix24.com", "2026-03-02T12:00:00+00:00")
UTC = ZoneInfo("UTC")


@pytest.mark.parametrize(
    ("url", "rebased"),
    [
        ("https://acme.bitrix24.ru/rest/1/code/", "https://acme.bitrix24.com/rest/1/code/"),
        ("https://ACME.bitrix24.ru/rest/", "https://acme.bitrix24.com/rest/"),
        ("https://other.bitrix24.ru/rest/1/code/", "https://other.bitrix24.ru/rest/1/code/"),
        ("http://acme.bitrix24.ru/rest/1/code/", "http://acme.bitrix24.ru/rest/1/code/"),
        ("https://acme.bitrix24.ru:8443/rest/1/code/", "https://acme.bitrix24.ru:8443/rest/1/code/"),
    ],
)
def test_rebase(url: str, rebased: str) -> None:
    """Only a URL on the old origin moves, keeping its path; any other stays as it is."""
    assert MOVE.rebase(url) == rebased


@pytest.mark.parametrize(
    ("portal", "applies"),
    [
        (PortalConfig(name="a", webhook_url="https://acme.bitrix24.ru/rest/1/c/", timezone=UTC), True),
        (PortalConfig(name="a", webhook_url="https://acme.bitrix24.com/rest/1/c/", timezone=UTC), False),
        (
            PortalConfig(
                name="a",
                oauth=OAuthConfig(
                    client_id="i", client_secret="s", refresh_token="r", domain="acme.bitrix24.ru"
                ),
                timezone=UTC,
            ),
            True,
        ),
    ],
)
def test_a_move_applies_while_the_configuration_names_the_old_address(
    portal: PortalConfig, applies: bool
) -> None:
    """Once ops put the new address in the configuration, the recorded move no longer applies."""
    assert MOVE.applies_to(portal) is applies
    assert configured_origin(portal).startswith("https://acme.bitrix24.")


def test_the_stored_form_round_trips_and_holds_no_path() -> None:
    """A move is stored as origins and a time; a damaged record reads as none."""
    assert PortalMove.from_json(MOVE.to_json()) == MOVE
    assert "/rest" not in MOVE.to_json()
    assert PortalMove.from_json("{") is None and PortalMove.from_json(None) is None
    assert origin_of("https://user:pw@Host.example:8443/rest/1/x/?q=1") == "https://host.example:8443"
