"""Commands packed by hiredis on redis-py's asyncio connections: the one place that bends redis-py.

redis-py 5 packs a command into the Redis protocol with hiredis (in C) on its *sync* connections
(``redis.connection.HiredisRespSerializer``) but in Python on its asyncio ones
(``redis.asyncio.connection.Connection.pack_command``). callq's scripts take many arguments, so in the
worker's profile that Python packer cost about a tenth of the process's CPU (a FINALIZE of ~30
arguments: 51 µs in Python, 9 µs with hiredis). :func:`pack_with_hiredis` makes a client's
connections pack with redis-py's own hiredis serializer instead; the bytes on the wire are the same
(``tests/schemas/store/test_packing.py`` checks both, and a client using it).

redis-py internals relied on: ``Connection.pack_command`` (overridden; ``pack_commands`` calls it
for pipelines), ``ConnectionPool.connection_class``, ``redis.connection.HiredisRespSerializer``.
"""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.connection import HiredisRespSerializer
from redis.utils import HIREDIS_AVAILABLE

_PACKER = HiredisRespSerializer()


def hiredis_packing(base: type[AbstractConnection]) -> type[AbstractConnection]:
    """``base`` (a connection class) packing its commands with hiredis."""
    if getattr(base, "packs_with_hiredis", False):
        return base

    def pack_command(self: AbstractConnection, *args: Any) -> list[bytes]:
        packed: list[bytes] = _PACKER.pack(*args)
        return packed

    return type(
        f"Hiredis{base.__name__}", (base,), {"pack_command": pack_command, "packs_with_hiredis": True}
    )


def packing_with_hiredis(client: Redis) -> Redis:
    """Make the connections ``client`` opens from now on (plain or Sentinel-managed) pack commands
    with hiredis, if it is installed. For a client that holds no connection yet. Returns it."""
    if HIREDIS_AVAILABLE:
        pool = client.connection_pool
        pool.connection_class = hiredis_packing(pool.connection_class)
    return client


async def pack_with_hiredis(client: Redis) -> Redis:
    """:func:`packing_with_hiredis` for a client that may hold connections already: they are closed
    and made again on first use. Returns it."""
    if HIREDIS_AVAILABLE:
        pool = packing_with_hiredis(client).connection_pool
        await pool.disconnect()
        pool.reset()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
    return client
