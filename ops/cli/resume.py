"""``callq resume PORTAL``: lift a portal's halt or rate pause, and wake the jobs that waited for it."""

from __future__ import annotations

import argparse
import sys

from redis.asyncio import Redis

from ops.cli.verb import Verb, with_redis
from schemas.config import Settings, UnknownPortalError
from schemas.store.ledger import Ledger


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``callq resume``."""
    parser.add_argument("portal")


async def run(args: argparse.Namespace, settings: Settings, redis: Redis) -> int:
    """Lift the halt and pause of ``args.portal``; say how many waiting jobs were woken (exit 2 for a
    portal that is not configured: nothing of it to resume)."""
    try:
        settings.portal(args.portal)
    except UnknownPortalError as exc:
        print(f"callq resume: {exc}", file=sys.stderr)
        return 2
    ledger = Ledger.for_settings(redis, settings)
    lifted, woken = await ledger.resume(args.portal)
    state = "resumed" if lifted else "was not halted or paused"
    print(f"portal {args.portal}: {state}; {woken} waiting job{'' if woken == 1 else 's'} woken")
    return 0


VERB = Verb(
    name="resume",
    help="lift a portal's halt (after fixing its credentials) or rate pause",
    add_arguments=add_arguments,
    run=with_redis(run),
)
