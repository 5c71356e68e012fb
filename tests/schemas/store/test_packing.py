"""Commands packed by hiredis (:mod:`schemas.store.packing`): the same bytes, and a client that works."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis
from redis.asyncio.connection import Connection
from redis.typing import EncodableT

from schemas.store.connect import redis_client
from schemas.store.packing import hiredis_packing, pack_with_hiredis

ARGS: list[tuple[EncodableT, ...]] = [
    ("SET", "k", "v"),
    ("CONFIG GET", "maxmemory"),
    ("EVALSHA", "a" * 40, 2, "k1", "k2", 1234567890123, 0.25, -1, b"\x00\xff", "é→✓", ""),
]


@pytest.mark.parametrize("args", ARGS)
def test_the_bytes_are_the_ones_redis_py_packs_in_python(args: tuple[EncodableT, ...]) -> None:
    python = Connection()
    packed = hiredis_packing(Connection)()
    assert b"".join(packed.pack_command(*args)) == b"".join(python.pack_command(*args))


async def test_a_client_packing_with_hiredis_reads_and_writes(
    redis: Redis, redis_url: str, prefix: str
) -> None:
    client = await pack_with_hiredis(Redis.from_url(redis_url))
    try:
        assert await client.ping()
        assert getattr(client.connection_pool.connection_class, "packs_with_hiredis", False)
        await client.set(f"{prefix}:k", "é→✓")
        async with client.pipeline(transaction=True) as pipe:
            pipe.get(f"{prefix}:k")
            pipe.eval("return ARGV[1] .. ARGV[2]", 0, "a", "1.5")
            assert await pipe.execute() == ["é→✓".encode(), b"a1.5"]
    finally:
        await client.aclose()


def test_callqs_clients_pack_with_hiredis(redis_url: str) -> None:
    """Every process's client (:func:`schemas.store.connect.redis_client`) packs in C too."""
    client = redis_client(redis_url)
    assert getattr(client.connection_pool.connection_class, "packs_with_hiredis", False)
