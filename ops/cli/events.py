"""``callq events bind [PORTAL] --url BASE``: bind callq's ``OnVoximplantCallEnd`` handler, so that each
call's end is pushed to ``callq serve`` (an extension, issue 14; pull works without it).

An OAuth portal is bound through ``event.bind`` (handler ``BASE/v1/bitrix/events/PORTAL``), and
``event.get`` then confirms it. A webhook portal cannot be bound through the REST API (Bitrix24 allows
``event.bind`` only to applications): the command prints what an administrator pastes into the portal's
UI (an outgoing webhook: event and handler URL) and where its ``application_token`` goes. Either way the
events are accepted only once the portal's ``event_token`` is set. Exit 0 when every portal is bound
or its instructions printed, 1 if a portal refused, 2 for an unknown portal.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

import aiohttp
from redis.asyncio import Redis

from ops.cli.verb import Verb, with_redis
from schemas.config import PortalConfig, Settings, UnknownPortalError
from schemas.store.keys import Keys
from worker.bitrix.address import PortalAddresses
from worker.bitrix.client import DEFAULT_TIMEOUT, USER_AGENT
from worker.bitrix.errors import AuthRefused, AuthUnavailable, BitrixCallError
from worker.bitrix.events import (
    CALL_END_EVENT,
    PortalCalls,
    bind_call_end,
    bound_call_end_handlers,
    handler_url,
)
from worker.bitrix.oauth import PortalAuth
from worker.bitrix.preflight import describe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-commands of ``callq events``."""
    sub = parser.add_subparsers(dest="events_command", required=True, metavar="ACTION")
    bind = sub.add_parser(
        "bind",
        help="bind OnVoximplantCallEnd to callq serve (OAuth: event.bind; webhook: print what to paste)",
    )
    bind.add_argument("portal", nargs="?", help="the portal (default: every configured portal)")
    bind.add_argument(
        "--url",
        required=True,
        help="callq serve's public base URL, as Bitrix24 reaches it (e.g. https://callq.example.com)",
    )
    bind.add_argument("--json", action="store_true", help="machine-readable output")


async def events(
    args: argparse.Namespace, settings: Settings, redis: Redis, *, out: TextIO = sys.stdout
) -> int:
    """Run ``callq events bind``."""
    try:
        portals = [settings.portal(args.portal)] if args.portal else list(settings.portals.values())
    except UnknownPortalError as exc:
        print(f"callq events: {exc}", file=sys.stderr)
        return 2
    if not portals:
        print("callq events: no portal is configured", file=sys.stderr)
        return 2
    keys = Keys(settings.key_prefix)
    async with aiohttp.ClientSession(timeout=DEFAULT_TIMEOUT, headers={"User-Agent": USER_AGENT}) as session:
        ctx = PortalCalls(
            session,
            PortalAuth(redis, prefix=settings.key_prefix, session=session),
            PortalAddresses(redis, keys),
        )
        found = [await _bind(ctx, portal, base_url=args.url) for portal in portals]
    if args.json:
        print(json.dumps(found, ensure_ascii=False), file=out)
    else:
        for entry in found:
            print(_describe(entry), file=out)
    return 1 if any(entry["status"] == "failed" for entry in found) else 0


async def _bind(ctx: PortalCalls, portal: PortalConfig, *, base_url: str) -> dict[str, Any]:
    url = handler_url(base_url, portal.name)
    entry: dict[str, Any] = {
        "portal": portal.name,
        "event": CALL_END_EVENT,
        "handler": url,
        "event_token_set": bool(portal.calls.event_token),
    }
    if portal.oauth is None:
        return {**entry, "status": "paste", "how": "an outgoing webhook in the portal's UI"}
    try:
        await bind_call_end(ctx, portal, url=url)
        bound = await bound_call_end_handlers(ctx, portal)
    except (BitrixCallError, AuthRefused, AuthUnavailable) as exc:
        return {**entry, "status": "failed", "error": describe(exc)}
    return {**entry, "status": "bound" if url in bound else "failed", "bound": bound}


def _describe(entry: dict[str, Any]) -> str:
    name = entry["portal"]
    env = f"CALLQ_PORTAL_{name.upper().replace('-', '_')}_EVENT_TOKEN"
    where = f"event_token in [portals.{name}.calls] (or {env})"
    if entry["status"] == "failed":
        why = entry.get("error") or f"event.get does not list {entry['handler']}"
        return f"portal {name}: not bound: {why}"
    if entry["status"] == "paste":
        token = (
            "event_token is set: it must be this webhook's application_token."
            if entry["event_token_set"]
            else f"then set {where} to the application_token the outgoing webhook shows;"
            " pushed events are refused until then."
        )
        return (
            f"portal {name}: a webhook portal cannot bind through the REST API. In the portal, create an"
            " outgoing webhook (Developer resources > Other > Outgoing webhook) and paste:\n"
            f"  handler URL: {entry['handler']}\n"
            f"  event:       {entry['event']} (OnVoximplantCallEnd)\n"
            f"  {token}"
        )
    token = (
        "event_token is set."
        if entry["event_token_set"]
        else f"Set {where} to the application_token your app received at install;"
        " pushed events are refused until then."
    )
    return f"portal {name}: {entry['event']} bound to {entry['handler']}. {token}"


VERB = Verb(
    name="events",
    help="bind the OnVoximplantCallEnd handler (push of each call's end) to callq serve",
    add_arguments=add_arguments,
    run=with_redis(lambda args, settings, redis: events(args, settings, redis, out=sys.stdout)),
)
