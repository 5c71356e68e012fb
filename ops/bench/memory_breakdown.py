"""Where a job's memory goes: ``MEMORY USAGE`` of every key of a prefix, grouped by kind, per job.

Key names are grouped by their shape (``{p}:job:*``, ``arq:job:*``, ``{p}:idem:*``…): what varies per job
(ids, numbers, keys, minutes) becomes ``*``. Shared keys (the outcome stream, indexes) are divided by
the job count like the rest, so the figures add up to about the ``used_memory`` growth per job; the
rest is Redis's key table (its buckets, and the expires table's) and allocator slack.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Awaitable
from typing import Any, cast

from redis.asyncio import Redis

_SHAPES = (
    (re.compile(r"^arq:(job|in-progress|retry|result):.*"), r"arq:\1:*"),
    (
        re.compile(
            r"^(?P<p>[^:]+):(job|idem|claim|callid|sched|dead|stats|rate|plan|pace|pause|operating|config|worker|voices):.*"
        ),
        r"{p}:\2:*",
    ),
)


def shape(key: str) -> str:
    """The kind of a key: its name with the prefix as ``{p}`` and what varies per job as ``*``."""
    for pattern, replacement in _SHAPES:
        if pattern.match(key):
            return pattern.sub(replacement, key)
    _, _, rest = key.partition(":")
    return f"{{p}}:{rest}" if rest else key


async def breakdown(redis: Redis, prefix: str, jobs: int) -> dict[str, Any]:
    """Bytes per job by kind of key (``MEMORY USAGE``, exact), with each kind's key count and the
    encodings met; a sample record's fields and their sizes; the outcome stream's layout."""
    sizes: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    encodings: dict[str, set[str]] = {}
    names = [
        name.decode()
        for pattern in (f"{prefix}:*", f"arq:*:{prefix}:*")
        for name in await _scan(redis, pattern)
    ]
    for start in range(0, len(names), 1000):
        chunk = names[start : start + 1000]
        async with redis.pipeline(transaction=False) as pipe:
            for name in chunk:
                pipe.memory_usage(name, samples=0)
                pipe.object("encoding", name)
            replies = await pipe.execute()
        for name, used, encoding in zip(chunk, replies[0::2], replies[1::2], strict=True):
            kind = shape(name)
            sizes[kind] += int(used or 0)
            counts[kind] += 1
            encodings.setdefault(kind, set()).add(
                encoding.decode() if isinstance(encoding, bytes) else str(encoding)
            )
    per_job = {
        kind: {
            "bytes_per_job": round(sizes[kind] / jobs, 1),
            "keys": counts[kind],
            "encoding": ",".join(sorted(encodings[kind])),
        }
        for kind in sorted(sizes, key=lambda k: -sizes[k])
    }
    per_job["total"] = {"bytes_per_job": round(sum(sizes.values()) / jobs, 1), "keys": len(names)}
    layout: dict[str, Any] = {}
    if await redis.exists(f"{prefix}:outcomes"):
        stream = await redis.xinfo_stream(f"{prefix}:outcomes")
        layout = {k: stream.get(k) for k in ("length", "radix-tree-keys", "radix-tree-nodes")}
    return {"keys": per_job, "record": await _sample_record(redis, prefix), "outcomes": layout}


async def _scan(redis: Redis, pattern: str) -> list[bytes]:
    return [name async for name in redis.scan_iter(match=pattern, count=10_000)]


async def _sample_record(redis: Redis, prefix: str) -> dict[str, int]:
    """One record's fields and the length of each value (bytes): lengths only, never the values (a
    number, a text)."""
    async for name in redis.scan_iter(match=f"{prefix}:job:*", count=1000):
        fields = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(name))
        return {key.decode(): len(value) for key, value in sorted(fields.items())}
    return {}
