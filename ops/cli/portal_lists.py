"""``callq lines [PORTAL]`` and ``callq voices [PORTAL]``: what a portal offers, for ``FROM_LINE`` and
``VOICE`` values (and for the ``lines``/``voice`` keys of the configuration).

Each asks the portal (``voximplant.line.get``, ``voximplant.tts.voices.get``) the way workers do: its
credentials (an OAuth token from the shared store), its current address. ``voices`` also refreshes
the list admission checks a job's ``voice`` against. Without PORTAL: every configured portal. A
table, or JSON with ``--json``; exit 1 if a portal could not be asked, 2 for an unknown portal.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, TextIO

import aiohttp
from redis.asyncio import Redis

from ops.cli.logs import show_in_full
from ops.cli.verb import Verb, with_redis
from schemas.config import PortalConfig, Settings, UnknownPortalError
from schemas.store.keys import Keys
from schemas.store.voices import store_voices
from worker.bitrix.address import PortalAddresses
from worker.bitrix.client import DEFAULT_TIMEOUT, USER_AGENT
from worker.bitrix.errors import AuthRefused, AuthUnavailable, BitrixCallError
from worker.bitrix.oauth import PortalAuth
from worker.bitrix.portal_call import call_portal
from worker.bitrix.preflight import describe

METHODS = {"lines": "voximplant.line.get", "voices": "voximplant.tts.voices.get"}
HEADINGS = {"lines": ("PORTAL", "LINE", "NAME"), "voices": ("PORTAL", "VOICE", "DESCRIPTION")}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``callq lines`` and ``callq voices``."""
    parser.add_argument("portal", nargs="?", help="the portal (default: every configured portal)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


async def list_offered(
    args: argparse.Namespace, settings: Settings, redis: Redis, *, what: str, out: TextIO = sys.stdout
) -> int:
    """Print what each portal offers (``what``: ``lines`` or ``voices``); 0, or 1 if one could not be asked."""
    try:
        portals = [settings.portal(args.portal)] if args.portal else list(settings.portals.values())
    except UnknownPortalError as exc:
        print(f"callq {what}: {exc}", file=sys.stderr)
        return 2
    if not portals:
        print(f"callq {what}: no portal is configured", file=sys.stderr)
        return 2
    found = [await _ask(portal, settings, redis, what=what) for portal in portals]
    if what == "lines":  # line ids are configuration: shown in full (their names are free text: masked)
        show_in_full(out, [line for entry in found for line in entry.get("lines", {})])
    if args.json:
        print(json.dumps(found, ensure_ascii=False), file=out)
    else:
        rows = [HEADINGS[what]]
        for entry in found:
            listing: dict[str, str] = entry.get(what, {})
            rows += [(entry["portal"], key, value) for key, value in sorted(listing.items())]
        widths = [max(len(row[i]) for row in rows) for i in range(2)]
        for row in rows:
            print(f"{row[0].ljust(widths[0])}  {row[1].ljust(widths[1])}  {row[2]}", file=out)
    failed = [entry for entry in found if "error" in entry]
    for entry in failed:
        print(f"callq {what}: portal {entry['portal']}: {entry['error']}", file=sys.stderr)
    return 1 if failed else 0


async def _ask(portal: PortalConfig, settings: Settings, redis: Redis, *, what: str) -> dict[str, Any]:
    keys = Keys(settings.key_prefix)
    async with aiohttp.ClientSession(timeout=DEFAULT_TIMEOUT, headers={"User-Agent": USER_AGENT}) as session:
        auth = PortalAuth(redis, prefix=settings.key_prefix, session=session)
        try:
            body = await call_portal(
                session, portal, METHODS[what], auth=auth, addresses=PortalAddresses(redis, keys)
            )
        except (BitrixCallError, AuthRefused, AuthUnavailable) as exc:
            return {"portal": portal.name, "error": describe(exc)}
    result = body.get("result")
    listing = {str(k): str(v) for k, v in result.items()} if isinstance(result, dict) else {}
    if what == "voices":
        await store_voices(redis, keys, portal.name, listing)
    return {"portal": portal.name, what: listing}


LINES = Verb(
    name="lines",
    help="list the lines a portal offers (FROM_LINE values)",
    add_arguments=add_arguments,
    run=with_redis(
        lambda args, settings, redis: list_offered(args, settings, redis, what="lines", out=sys.stdout)
    ),
)
VOICES = Verb(
    name="voices",
    help="list the voices a portal offers (VOICE values) and refresh the list admission checks",
    add_arguments=add_arguments,
    run=with_redis(
        lambda args, settings, redis: list_offered(args, settings, redis, what="voices", out=sys.stdout)
    ),
)
