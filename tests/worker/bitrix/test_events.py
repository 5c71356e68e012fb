"""Whether a portal's push of call ends is set up, as ``callq check`` reads ``event.get`` (a table)."""

from __future__ import annotations

import pytest

from worker.bitrix.events import handler_url, handler_verdict

URL = "https://callq.example.com/v1/bitrix/events/acme"


@pytest.mark.parametrize(
    ("oauth", "follow", "token_set", "handlers", "error", "ok", "says"),
    [
        (True, False, True, None, None, True, "not followed"),
        (True, True, True, [URL], None, True, f"bound: {URL}"),
        (True, True, False, [URL], None, False, "no event_token is set"),
        (True, True, True, [], None, False, "not bound: `callq events bind"),
        (True, True, False, [], None, True, "not bound (results are pulled)"),
        (True, True, True, None, "ACCESS_DENIED", False, "not known: ACCESS_DENIED"),
        (True, True, False, None, "ACCESS_DENIED", True, "not known: ACCESS_DENIED"),
        (False, True, True, [URL], None, True, f"bound: {URL}"),
        (False, True, True, [], None, True, "check it there"),
        (False, True, True, None, "WRONG_AUTH_TYPE", True, "check it there"),
        (False, True, False, [], None, True, "push off (no event_token)"),
        (False, True, False, [URL], None, False, "pushed events are refused"),
    ],
)
def test_handler_verdict(
    oauth: bool,
    follow: bool,
    token_set: bool,
    handlers: list[str] | None,
    error: str | None,
    ok: bool,
    says: str,
) -> None:
    """An unbound handler fails only a portal that expects pushes (a token) and could bind it (OAuth)."""
    verdict = handler_verdict(oauth=oauth, follow=follow, token_set=token_set, handlers=handlers, error=error)
    assert verdict[0] is ok
    assert says in verdict[1]


@pytest.mark.parametrize("base", ["https://callq.example.com", "https://callq.example.com/"])
def test_handler_url(base: str) -> None:
    """The handler is ``callq serve``'s events route under its public base URL."""
    assert handler_url(base, "acme") == URL
