"""Say plainly when no Redis answers, or start a throwaway one for the sandbox demo (a
:class:`~ops.redis_server.RedisServer` in a temporary directory)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlparse

import structlog
from redis.exceptions import RedisError

from ops.redis_server import RedisServer
from schemas.config import Settings, redact_redis_url
from schemas.policy.redact import redact_text
from schemas.store.connect import close_client, redis_client
from schemas.store.connect import ping as ping_client

log = structlog.get_logger("callq")


class RedisUnavailable(Exception):
    """No Redis answers at the configured URL; the message says what to do."""


async def ping(url: str, *, timeout_s: float = 2.0) -> str | None:
    """None if Redis at ``url`` answers PING, else the reason."""
    client = redis_client(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        await ping_client(client)
        return None
    except (RedisError, OSError) as exc:
        return str(exc) or type(exc).__name__
    finally:
        await close_client(client)


@contextlib.asynccontextmanager
async def ensure_redis(settings: Settings, *, allow_throwaway: bool) -> AsyncIterator[Settings]:
    """Yield settings whose Redis answers.

    Args:
        settings: the configured settings.
        allow_throwaway: for the sandbox demo, start a private ``redis-server`` when the configured
            local one does not answer and one is installed.

    Raises:
        RedisUnavailable: nothing answers and nothing could be started.
    """
    problem = await ping(settings.redis_url)
    if problem is None:
        yield settings
        return
    host = urlparse(settings.redis_url).hostname or ""
    binary = shutil.which("redis-server")
    shown = redact_redis_url(settings.redis_url)  # the password, if any, stays out of the message
    if not (allow_throwaway and binary and host in ("localhost", "127.0.0.1", "::1")):
        raise RedisUnavailable(
            f"no Redis answers at {shown} ({redact_text(problem)}). Start one (e.g. `redis-server`), "
            "or point CALLQ_REDIS_URL / --redis-url at yours."
        )
    with tempfile.TemporaryDirectory(prefix="callq-redis-") as workdir:
        server = RedisServer(Path(workdir))
        try:
            try:
                await asyncio.to_thread(server.start)
            except RedisError:
                raise RedisUnavailable(
                    f"no Redis at {shown}, and a throwaway redis-server did not start"
                ) from None
            log.warning(
                "redis.throwaway_started",
                configured=shown,
                url=server.url,
                hint="nothing answered at the configured URL; this Redis is gone when callq stops",
            )
            yield dataclasses.replace(settings, redis_url=server.url)
        finally:
            await asyncio.to_thread(server.stop)
