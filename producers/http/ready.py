"""Liveness and readiness of the HTTP way in: ``GET /healthz``, ``GET /readyz`` and the default
readiness check (Redis answers PING, takes writes, a worker's arq health-check key exists and, for
``callq serve``, its configuration agrees with the workers').

:func:`producers.http.app.create_app` routes both without a token; the check it uses is
``app[READY_CHECK]``, replaceable through ``create_app(ready_check=...)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from producers.http.guards import json_response
from schemas.store.connect import ping
from schemas.store.errors import Refusal, write_refusal
from schemas.store.keys import Keys

log = structlog.get_logger("callq.http")

ReadyCheck = Callable[[], Awaitable[dict[str, Any]]]
"""Returns ``{check name: "ok" or what is wrong}``; ready when there is one and every value is ``"ok"``."""

READY_CHECK = web.AppKey[ReadyCheck]("callq.http.ready_check")

READY_TIMEOUT_S = 2.0
"""A readiness probe must answer before the orchestrator's own timeout, even if Redis hangs."""

WRITE_PROBE_TTL_MS = 10_000
"""The probe key only has to exist for the probe (see ``Keys.write_probe``)."""

REDIS_FULL = "no: Redis is full (maxmemory reached) and refuses writes"
NOT_WRITABLE = {
    Refusal.FULL: REDIS_FULL,
    Refusal.MISCONF: "no: Redis cannot save its RDB snapshot (MISCONF) and refuses writes",
    Refusal.READONLY: "no: Redis is a read-only replica (READONLY) and refuses writes",
    Refusal.NOREPLICAS: "no: Redis has too few replicas (NOREPLICAS) and refuses writes",
}
"""The ``redis_writable`` check's answer, by why Redis refuses writes."""


async def healthz(request: web.Request) -> web.Response:
    """``GET /healthz``: the process is up."""
    return json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """``GET /readyz``: 200 when every readiness check says ``ok``, else 503 with each result."""
    try:
        checks = await request.app[READY_CHECK]()
    except Exception as exc:  # a probe answers; it does not crash
        log.exception("http.ready_check_failed")
        checks = {"ready_check": f"failed: {type(exc).__name__}"}
    ready = bool(checks) and all(result == "ok" for result in checks.values())
    return json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )


ConfigCheck = Callable[[], Awaitable[str]]
"""Returns ``"ok"``, or how this process's configuration disagrees with the workers'."""


def redis_and_worker_check(redis: Redis, keys: Keys, *, config: ConfigCheck | None = None) -> ReadyCheck:
    """The default readiness check: Redis answers PING (``redis``), takes a write (``redis_writable``:
    a Redis that refuses writes refuses every job), and arq's health-check key of the queue exists (``worker``: a
    worker refreshes it every few seconds with a short TTL); with ``config``, also that this
    process's configuration agrees with the workers' (``callq serve`` passes one)."""

    async def check() -> dict[str, Any]:
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):
                await ping(redis)
                alive = await redis.exists(keys.health)
                try:
                    await redis.set(keys.write_probe, b"1", px=WRITE_PROBE_TTL_MS)
                    writable = "ok"
                except ResponseError as exc:
                    refusal = write_refusal(exc)
                    if refusal is None:
                        raise
                    writable = NOT_WRITABLE[refusal]
                agreed = await config() if config is not None else None
        except (RedisError, OSError, TimeoutError) as exc:  # refused, timed out, wrong password...
            unknown = "unknown: Redis is unreachable"
            down = {
                "redis": f"unreachable: {type(exc).__name__}",
                "redis_writable": unknown,
                "worker": unknown,
            }
            return down | ({"config": unknown} if config is not None else {})
        worker = "ok" if alive else f"no live worker: {keys.health} is absent"
        checks = {"redis": "ok", "redis_writable": writable, "worker": worker}
        return checks | ({"config": agreed} if agreed is not None else {})

    return check
