"""Keeping each portal's voice list fresh in Redis, for admission to check a job's ``voice``.

Once an hour per portal, one worker (whichever takes the hour's lock first) asks the portal for
``voximplant.tts.voices.get`` and stores the answer (:mod:`schemas.store.voices`), through the
portal's rate-limit bucket like any request. A portal that is halted is not asked; a failure is
logged and tried again five minutes later. Voice lists rarely change: an hour keeps a new voice
usable soon enough, and costs one request per portal per hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas.config import PortalConfig
from schemas.store.keys import Keys
from schemas.store.voices import store_voices
from worker.bitrix.errors import AuthRefused, AuthUnavailable, BitrixCallError
from worker.bitrix.portal_call import call_portal
from worker.bitrix.preflight import describe
from worker.jobs.deps import Deps
from worker.jobs.pacing import effective_bucket
from worker.policy.operating import OperatingReading

log = structlog.get_logger("callq.worker")

VOICES_GET = "voximplant.tts.voices.get"
REFRESH_EVERY_S = 3600.0
RETRY_AFTER_FAILURE_S = 300.0
TICK_S = 60.0
"""How often a worker looks whether a portal's hour is up (one SET NX per portal); also how long after
its start a worker first looks, so that a worker started for a moment asks no portal anything."""


async def keep_voices_fresh(
    deps: Deps, redis: Redis, keys: Keys, *, first_after_s: float = TICK_S, tick_s: float = TICK_S
) -> None:
    """Refresh every portal's voices when its hour is up, forever (cancel to stop)."""
    holder = secrets.token_hex(8)
    await asyncio.sleep(first_after_s)
    while True:
        for portal in deps.settings.portals.values():
            with contextlib.suppress(RedisError):  # the next tick tries again
                await refresh_voices(deps, redis, keys, portal, holder=holder)
        await asyncio.sleep(tick_s)


async def refresh_voices(deps: Deps, redis: Redis, keys: Keys, portal: PortalConfig, *, holder: str) -> bool:
    """Ask ``portal`` for its voices if no worker did this hour; True if they were stored."""
    lock, name = keys.voices_refresh(portal.name), portal.name
    if not await redis.set(lock, holder, nx=True, px=int(REFRESH_EVERY_S * 1000)):
        return False
    if await redis.exists(keys.portal_halt(name)):
        await redis.set(lock, holder, px=int(RETRY_AFTER_FAILURE_S * 1000))
        return False
    delay_s = await deps.limiter.reserve_portal(name, effective_bucket(portal))
    if delay_s > 0:
        await asyncio.sleep(delay_s)
    try:
        body = await call_portal(
            deps.session,
            portal,
            VOICES_GET,
            auth=deps.auth,
            addresses=deps.addresses,
            client_timeout=deps.client_timeout,
        )
    except (BitrixCallError, AuthRefused, AuthUnavailable) as exc:
        log.warning("voices.refresh_failed", portal=name, error=describe(exc))
        await redis.set(lock, holder, px=int(RETRY_AFTER_FAILURE_S * 1000))
        return False
    result = body.get("result")
    voices = {str(k): str(v) for k, v in result.items()} if isinstance(result, dict) else {}
    await store_voices(redis, keys, name, voices)
    reading = OperatingReading.of(body.get("time"))
    if reading is not None:
        await deps.limiter.record_operating(name, VOICES_GET, reading)
    log.info("voices.refreshed", portal=name, voices=len(voices))
    return True
