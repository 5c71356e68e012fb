"""A private Redis made to refuse writes the ways a real one does, other than being full (see
:mod:`schemas.store.errors`): ``MISCONF`` (an RDB save that fails: its directory is ``/proc``, where no
one can create a file, root included), ``READONLY`` (a ``REPLICAOF`` a port nobody listens on) and
``NOREPLICAS`` (``min-replicas-to-write 1`` with no replica)."""

from __future__ import annotations

from pathlib import Path

import redis as sync_redis
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from ops.redis_server import RedisServer, free_port
from schemas.store.errors import Refusal, write_refusal
from tests.support.helpers import wait_for

REASONS = (Refusal.MISCONF, Refusal.READONLY, Refusal.NOREPLICAS)

SERVER_ARGS = ("--enable-protected-configs", "yes")
"""``CONFIG SET dir`` is a protected setting in Redis 7: a test server must allow it."""

UNWRITABLE_DIR = "/proc"


async def _refused_as(redis: Redis, refusal: Refusal) -> bool:
    try:
        await redis.set("refusal-probe", "1", px=1000)
    except ResponseError as exc:
        return write_refusal(exc) is refusal
    return False


async def refuse(redis: Redis, refusal: Refusal) -> None:
    """Make the Redis of ``redis`` refuse writes for ``refusal``; returns once a write is refused so."""
    if refusal is Refusal.NOREPLICAS:
        await redis.config_set("min-replicas-to-write", 1)
    elif refusal is Refusal.READONLY:
        await redis.replicaof("127.0.0.1", str(free_port()))
    elif refusal is Refusal.MISCONF:
        await redis.config_set("save", "3600 1")
        await redis.config_set("dir", UNWRITABLE_DIR)
        await redis.bgsave()
    else:
        raise ValueError(refusal)
    await wait_for(
        lambda: _refused_as(redis, refusal), timeout_s=10, what=f"Redis to refuse writes ({refusal})"
    )


async def allow(redis: Redis, refusal: Refusal, workdir: Path) -> None:
    """Undo :func:`refuse`: returns once Redis takes writes again."""
    if refusal is Refusal.NOREPLICAS:
        await redis.config_set("min-replicas-to-write", 0)
    elif refusal is Refusal.READONLY:
        await redis.replicaof("NO", "ONE")
    elif refusal is Refusal.MISCONF:
        await redis.config_set("dir", str(workdir))
        await redis.bgsave()  # a save that succeeds lifts stop-writes-on-bgsave-error

    async def writable() -> bool:
        try:
            await redis.set("refusal-probe", "1", px=1000)
        except ResponseError as exc:
            if write_refusal(exc) is None:
                raise
            if refusal is Refusal.MISCONF:
                info = await redis.info("persistence")
                if not info.get("rdb_bgsave_in_progress"):
                    await redis.bgsave()
            return False
        return True

    await wait_for(writable, timeout_s=10, what="Redis to take writes again")
    if refusal is Refusal.MISCONF:
        await redis.config_set("save", "")


def unblock(server: RedisServer) -> None:
    """Whatever a failed test left: no snapshots to fail at shutdown (a Redis that cannot save its RDB
    refuses to stop), no replication, no replica requirement."""
    client = sync_redis.Redis(port=server.port, socket_timeout=2)
    try:
        client.config_set("save", "")
        client.config_set("min-replicas-to-write", 0)
        client.replicaof("NO", "ONE")
    finally:
        client.close()
