"""Bitrix24's event handlers for a call's end (``OnVoximplantCallEnd``): which are bound
(``event.get``), and binding callq's (``event.bind``, OAuth portals only; an extension, issue 14).

A webhook portal cannot bind through the REST API: an administrator creates an *outgoing webhook*
in the portal's UI for ``ONVOXIMPLANTCALLEND`` with callq's handler URL, and its
``application_token`` becomes the portal's ``event_token``. ``event.get`` under an inbound webhook
may not show that outgoing webhook, so for a webhook portal an empty list proves nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp

from schemas.config import PortalConfig
from worker.bitrix.address import PortalAddresses
from worker.bitrix.oauth import PortalAuth
from worker.bitrix.portal_call import call_portal

CALL_END_EVENT = "ONVOXIMPLANTCALLEND"
EVENTS_PATH = "/v1/bitrix/events/{portal}"
"""Where ``callq serve`` takes a portal's pushed events."""


def handler_url(base_url: str, portal: str) -> str:
    """callq's handler for ``portal`` under ``callq serve``'s public ``base_url``."""
    return base_url.rstrip("/") + EVENTS_PATH.format(portal=portal)


@dataclass(frozen=True)
class PortalCalls:
    """What a portal's event calls need: the session, its credentials and its address."""

    session: aiohttp.ClientSession
    auth: PortalAuth
    addresses: PortalAddresses


async def bound_call_end_handlers(ctx: PortalCalls, portal: PortalConfig) -> list[str]:
    """The handler URLs bound for ``OnVoximplantCallEnd`` on ``portal`` (``event.get``)."""
    body = await call_portal(ctx.session, portal, "event.get", auth=ctx.auth, addresses=ctx.addresses)
    result = body.get("result")
    entries = result if isinstance(result, list) else []
    return [
        str(entry.get("handler", ""))
        for entry in entries
        if isinstance(entry, dict) and str(entry.get("event", "")).upper() == CALL_END_EVENT
    ]


async def bind_call_end(ctx: PortalCalls, portal: PortalConfig, *, url: str) -> None:
    """Bind ``url`` for ``OnVoximplantCallEnd`` on an OAuth ``portal`` (``event.bind``).

    Raises:
        BitrixCallError: the portal refused (a webhook portal: ``WRONG_AUTH_TYPE``).
        AuthRefused, AuthUnavailable: no OAuth token could be had.
    """
    params = {"event": CALL_END_EVENT, "handler": url}
    await call_portal(ctx.session, portal, "event.bind", params, auth=ctx.auth, addresses=ctx.addresses)


EVENTS_CHECK = "call end handler (event.get)"
"""The row of ``callq check`` that says whether ``OnVoximplantCallEnd`` is bound."""


def handler_verdict(
    *, oauth: bool, follow: bool, token_set: bool, handlers: list[str] | None, error: str | None = None
) -> tuple[bool, str]:
    """Whether a portal's push of call ends is set up (ok, detail), from what ``event.get`` said.

    Pull always works, so an unbound handler fails only a portal that expects pushes (its
    ``event_token`` is set) and could have bound it (OAuth). ``handlers``: the URLs bound for
    ``OnVoximplantCallEnd`` (None when ``event.get`` failed with ``error``).
    """
    if not follow:
        return True, "calls are not followed (calls.follow = false)"
    bind = "`callq events bind PORTAL --url BASE`"
    if handlers:
        shown = ", ".join(sorted(handlers))
        if token_set:
            return True, f"bound: {shown}"
        return False, f"bound: {shown}, but no event_token is set: pushed events are refused (403)"
    if oauth:
        if error is not None:
            return not token_set, f"not known: {error}"
        if token_set:
            return False, f"not bound: {bind} (results are pulled meanwhile)"
        return True, f"not bound (results are pulled); to push, {bind} and set event_token"
    if token_set:
        return True, (
            "event_token set; an outgoing webhook made in the portal's UI is not listed by event.get "
            "under an inbound webhook: check it there"
        )
    return True, f"push off (no event_token): results are pulled; {bind} prints how to set it up"
