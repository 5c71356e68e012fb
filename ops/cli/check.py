"""``callq check``: validate the configuration and probe each portal; a table (or JSON), exit 1 on any problem."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import TextIO

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ops.cli.verb import Verb
from schemas.config import Settings
from schemas.policy.moves import PortalMove
from schemas.store.connect import close_client, ping, redis_client
from schemas.store.keys import Keys
from worker.bitrix.address import PortalAddresses
from worker.bitrix.client import DEFAULT_TIMEOUT, USER_AGENT
from worker.bitrix.oauth import PortalAuth
from worker.bitrix.preflight import CheckRow, Probe, check_portal, drift_row

REDIS_TIMEOUT_S = 2.0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``callq check``."""
    parser.add_argument("--json", action="store_true", help="machine-readable output")


async def run(args: argparse.Namespace, settings: Settings) -> int:
    """Check the configuration and every portal; 0 if everything passed, else 1."""
    return await run_check(settings, as_json=args.json, out=sys.stdout)


async def run_check(settings: Settings, *, as_json: bool, out: TextIO) -> int:
    """Check every portal; print the table (or JSON); 0 if everything passed, else 1."""
    where = str(settings.config_path or "no file (environment only)")
    rows: list[CheckRow] = [CheckRow("-", "configuration", True, where)]
    if not settings.portals:
        rows.append(CheckRow("-", "portals", False, "none configured (CALLQ_WEBHOOK_URL or [portals.NAME])"))
    client = redis_client(
        settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S
    )
    try:
        redis = await _answering(client)
        rows.append(await drift_row(settings, redis))
        rows += await _probe_portals(settings, client, redis)
    finally:
        await close_client(client)
    print_rows(rows, as_json=as_json, out=out)
    return 0 if all(row.ok for row in rows) else 1


async def _probe_portals(settings: Settings, client: Redis, redis: Redis | None) -> list[CheckRow]:
    keys, rows = Keys(settings.key_prefix), []
    seen: dict[str, PortalMove] = {}
    async with aiohttp.ClientSession(timeout=DEFAULT_TIMEOUT, headers={"User-Agent": USER_AGENT}) as session:
        probe = Probe(
            session=session,
            auth=PortalAuth(client, prefix=settings.key_prefix, session=session),
            addresses=PortalAddresses(
                redis, keys, on_move=lambda portal, move: seen.__setitem__(portal, move)
            ),
            redis=redis,
            keys=keys,
        )
        for portal in settings.portals.values():
            rows += await check_portal(probe, portal, seen_moves=seen)
    return rows


async def _answering(client: Redis) -> Redis | None:
    """The client if Redis answers, else None (the checks that need it say so)."""
    try:
        await ping(client)
    except (RedisError, OSError):
        return None
    return client


def print_rows(rows: list[CheckRow], *, as_json: bool, out: TextIO) -> None:
    """One row per check, aligned (or one JSON list)."""
    if as_json:
        print(json.dumps([asdict(row) for row in rows], ensure_ascii=False), file=out)
        return
    table: list[tuple[str, ...]] = [("PORTAL", "CHECK", "RESULT", "DETAIL")]
    table += [(r.portal, r.check, "ok" if r.ok else "FAIL", r.detail) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(3)]
    for row in table:
        cells = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        print(f"{cells}  {row[3]}", file=out)


VERB = Verb(
    name="check",
    help="validate the configuration and probe each portal: credentials, scopes, lines, voices, address",
    add_arguments=add_arguments,
    run=run,
    needs_redis=False,
)
