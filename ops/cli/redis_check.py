"""Say plainly when no Redis answers, or start a throwaway one for the sandbox demo."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from urllib.parse import urlparse

import structlog
from redis.exceptions import RedisError

from schemas.config import Settings, redact_redis_url
from schemas.policy.redact import redact_text
from schemas.store.connect import close_client, redis_client

log = structlog.get_logger("callq")


class RedisUnavailable(Exception):
    """No Redis answers at the configured URL; the message says what to do."""


async def ping(url: str, *, timeout_s: float = 2.0) -> str | None:
    """None if Redis at ``url`` answers PING, else the reason."""
    client = redis_client(url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s)
    try:
        await client.ping()
        return None
    except (RedisError, OSError) as exc:
        return str(exc) or type(exc).__name__
    finally:
        await close_client(client)


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="callq-redis-") as workdir:
        process = await asyncio.create_subprocess_exec(
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        try:
            for _ in range(100):
                if await ping(url, timeout_s=0.2) is None:
                    break
                await asyncio.sleep(0.05)
            else:
                raise RedisUnavailable(f"no Redis at {shown}, and a throwaway redis-server did not start")
            log.warning(
                "redis.throwaway_started",
                configured=shown,
                url=url,
                hint="nothing answered at the configured URL; this Redis is gone when callq stops",
            )
            yield dataclasses.replace(settings, redis_url=url)
        finally:
            process.terminate()
            await process.wait()
