"""The pre-flight of ``callq check``: is the configuration usable? Each portal's credentials, lines, voices.

It compares the configuration with the one every live worker and ``callq serve`` runs (a row that
fails naming the keys that differ). For each portal it calls ``voximplant.line.get`` (proves the credentials work and the webhook or
app has the telephony scope, and lists the lines) and ``voximplant.tts.voices.get``, then checks that
every line and voice named in the configuration exists. It prints one row per check and exits
non-zero on any problem. It never calls ``voximplant.callback.start``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import aiohttp
from redis.exceptions import RedisError

from schemas.config import PortalConfig, Settings, redact_webhook_url
from schemas.config.drift import credential_key, disagreements
from schemas.config.fingerprint import fingerprint
from schemas.config.registry import ConfigRegistry
from schemas.store.connect import close_client, redis_client
from schemas.store.keys import Keys
from schemas.store.secret import read_deployment_secret
from worker.bitrix.client import call_method
from worker.bitrix.errors import BitrixCallError

DRIFT_CHECK = "same as the live processes"
"""The row that compares this configuration with the one the running workers and serve use."""

REDIS_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class CheckRow:
    """One check: what, and whether it passed."""

    portal: str
    check: str
    ok: bool
    detail: str


async def check_portal(session: aiohttp.ClientSession, portal: PortalConfig) -> list[CheckRow]:
    """Every check of one portal."""
    name = portal.name
    if portal.webhook_url is None:
        return [CheckRow(name, "credentials", False, "OAuth portals are checked by a worker's first refresh")]
    rows = [CheckRow(name, "webhook", True, redact_webhook_url(portal.webhook_url))]
    try:
        _status, body = await call_method(session, portal.webhook_url, "voximplant.line.get", {})
    except BitrixCallError as exc:
        rows.append(CheckRow(name, "credentials (voximplant.line.get)", False, str(exc)))
        return rows
    lines = body["result"] if isinstance(body.get("result"), dict) else {}
    rows.append(
        CheckRow(name, "credentials (voximplant.line.get)", True, f"{len(lines)} lines on the portal")
    )
    for line_id in sorted(portal.lines):
        found = line_id in lines
        rows.append(
            CheckRow(name, f"line {line_id}", found, str(lines[line_id]) if found else "not on the portal")
        )
    voices = {line.voice for line in portal.lines.values() if line.voice}
    if voices:
        try:
            _status, body = await call_method(session, portal.webhook_url, "voximplant.tts.voices.get", {})
            offered = body["result"] if isinstance(body.get("result"), dict) else {}
        except BitrixCallError as exc:
            rows.append(CheckRow(name, "voices (voximplant.tts.voices.get)", False, str(exc)))
            return rows
        for voice in sorted(voices):
            # the callback docs use voices missing from the list; a miss is reported, the portal decides
            rows.append(
                CheckRow(name, f"voice {voice}", voice in offered, "" if voice in offered else "not offered")
            )
    return rows


async def drift_row(settings: Settings) -> CheckRow:
    """Does this configuration match the one every live worker and ``callq serve`` runs?

    Reads Redis only (the registry of :mod:`schemas.config.registry`); creates nothing there.
    """
    keys = Keys(settings.key_prefix)
    redis = redis_client(
        settings.redis_url, socket_connect_timeout=REDIS_TIMEOUT_S, socket_timeout=REDIS_TIMEOUT_S
    )
    try:
        secret = await read_deployment_secret(redis, keys)
        registry = ConfigRegistry(redis, keys)
        live = await registry.live()
        if not live:
            return CheckRow("-", DRIFT_CHECK, True, "no live worker or serve to compare with")
        mine = fingerprint(settings, credential_key=credential_key(secret or b""))
        found = await disagreements(registry, mine, live)
    except (RedisError, OSError) as exc:
        return CheckRow(
            "-", DRIFT_CHECK, False, f"cannot compare: Redis is unreachable ({type(exc).__name__})"
        )
    finally:
        await close_client(redis)
    if secret is None:  # lost: credential digests cannot be compared
        found = [replace(d, keys=tuple(k for k in d.keys if not k.endswith(".credentials"))) for d in found]
        found = [d for d in found if d.keys]
    if not found:
        return CheckRow("-", DRIFT_CHECK, True, f"the same as every live process ({len(live)})")
    detail = "; ".join(f"{', '.join(d.keys)} differ from {', '.join(d.processes)}" for d in found)
    return CheckRow("-", DRIFT_CHECK, False, detail)
