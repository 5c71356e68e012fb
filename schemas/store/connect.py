"""``CALLQ_REDIS_URL``: a plain Redis URL, or a Sentinel set for high availability.

Forms:
- ``redis://[user:password@]host:6379/0`` (and ``rediss://`` for TLS, ``unix://``): as redis-py reads them.
- ``redis+sentinel://[user:password@]host1:26379,host2:26379,host3:26379/MASTER[/DB]``: ask the
  Sentinels for the current master named MASTER; the password (if any) is the master's. After a
  failover every new connection goes to the new master.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from redis.asyncio import Redis
from redis.asyncio.sentinel import Sentinel
from redis.exceptions import ResponseError

from schemas.store.errors import write_refusal
from schemas.store.packing import packing_with_hiredis

SENTINEL_SCHEME = "redis+sentinel://"


@dataclass(frozen=True)
class SentinelTarget:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    username: str | None = None
    password: str | None = None


def parse_sentinel_url(url: str) -> SentinelTarget | None:
    """The Sentinel target of ``url``, or None for a plain Redis URL.

    Raises:
        ValueError: a ``redis+sentinel://`` URL without hosts or master name.
    """
    if not url.startswith(SENTINEL_SCHEME):
        return None
    rest = url[len(SENTINEL_SCHEME) :]
    auth, _, rest = rest.rpartition("@")
    hosts, _, path = rest.partition("/")
    parts = [p for p in path.split("/") if p]
    if not hosts or not parts:
        raise ValueError("redis+sentinel:// URLs look like redis+sentinel://host1:26379,host2:26379/MASTER/0")
    sentinels = []
    for item in hosts.split(","):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "26379")
        sentinels.append((host or item, int(port or 26379)))
    username, _, password = auth.partition(":") if auth else ("", "", "")
    return SentinelTarget(
        sentinels=tuple(sentinels),
        master=parts[0],
        db=int(parts[1]) if len(parts) > 1 else 0,
        username=unquote(username) or None,
        password=unquote(password) or None,
    )


def redis_client(url: str, **options: Any) -> Redis:
    """A ``redis.asyncio.Redis`` for ``url`` (plain or Sentinel); ``options`` go to the connection."""
    target = parse_sentinel_url(url)
    if target is None:
        plain: Redis = Redis.from_url(url, **options)
        return packing_with_hiredis(plain)
    sentinel_options = {k: v for k, v in options.items() if k.startswith("socket_")}
    sentinel = Sentinel(list(target.sentinels), **sentinel_options)  # type: ignore[no-untyped-call]
    client: Redis = sentinel.master_for(
        target.master, db=target.db, username=target.username, password=target.password, **options
    )
    return packing_with_hiredis(client)


async def close_client(client: Redis) -> None:
    """Close a client from :func:`redis_client`, with its Sentinel connections if it has any."""
    await client.aclose()
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()


async def ping(redis: Redis) -> None:
    """PING ``redis``: returns if it answers, raises what redis-py raises if not.

    A Redis that refuses writes answers too: under ``MISCONF`` Redis refuses PING itself (it counts
    as a write there), and that is a Redis that is up and can be waited for, not an unreachable one.
    """
    try:
        await redis.ping()
    except ResponseError as exc:
        if write_refusal(exc) is None:
            raise
