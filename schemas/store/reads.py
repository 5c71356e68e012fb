"""Reading job records back: by id, the queue a page at a time, the attempts in flight, key holders."""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from typing import Any, Literal, cast, overload

from redis.asyncio import Redis

from schemas.store.keys import Keys
from schemas.store.records import JobRecord, decode_record, decode_text


class RecordReader:
    """Reads job records; writes nothing.

    Args:
        redis: a ``redis.asyncio.Redis`` (``decode_responses`` may be either).
        keys: key names under the deployment prefix.
    """

    def __init__(self, redis: Redis, *, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys

    async def read(self, job_id: str, *, run_at: bool = True) -> JobRecord | None:
        """The record of ``job_id``, or None.

        Args:
            job_id: the job.
            run_at: also read the job's place in arq's queue, its ``run_at`` while it waits (a job
                admitted by this version has no ``run_at`` field until it is put back: the queue's
                score says it). The worker, which does not show it, reads the hash alone.
        """
        if not run_at:
            raw = await cast(Awaitable[dict[Any, Any]], self.redis.hgetall(self.keys.job(job_id)))
            return decode_record(job_id, raw)
        (record,) = await self.read_many([job_id], keep_missing=True)
        return record

    @overload
    async def read_many(
        self, job_ids: Sequence[str], *, keep_missing: Literal[False] = False
    ) -> list[JobRecord]: ...

    @overload
    async def read_many(
        self, job_ids: Sequence[str], *, keep_missing: Literal[True]
    ) -> list[JobRecord | None]: ...

    async def read_many(
        self, job_ids: Sequence[str], *, keep_missing: bool = False
    ) -> list[JobRecord] | list[JobRecord | None]:
        """The records of ``job_ids`` that exist, in that order (one round trip), each with its
        queue score as ``run_at`` when its record has none (:meth:`read`); ``keep_missing``: None
        in the place of each that does not."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hgetall(self.keys.job(job_id))
                pipe.zscore(self.keys.queue, self.keys.jobs.member(job_id))
            replies = await pipe.execute()
        records = [
            decode_record(job_id, raw, queue_ms=score)
            for job_id, raw, score in zip(job_ids, replies[0::2], replies[1::2], strict=True)
        ]
        return records if keep_missing else [rec for rec in records if rec is not None]

    async def queued(self, *, start: int, count: int) -> list[JobRecord]:
        """Records of jobs in arq's queue (pending jobs), in order of ``run_at``, one page."""
        members = await self.redis.zrange(self.keys.queue, start, start + count - 1)
        return await self.read_many([self.keys.jobs.job_id(decode_text(m)) for m in members])

    async def in_flight(self) -> list[JobRecord]:
        """Records of the jobs whose attempt is in flight (``{p}:running``), oldest lease first.

        A running job whose arq job was given up is in arq's queue no more; this finds it anyway.
        """
        return await self.read_many(
            [decode_text(m) for m in await self.redis.zrange(self.keys.running, 0, -1)]
        )

    async def key_holders(self, key: str, *, portals: Sequence[str]) -> dict[str, str]:
        """The job holding idempotency key ``key`` on each of ``portals`` that has one (one round trip).

        A key is the same job only on the same portal, so a key may name a job on several portals:
        callers decide what several holders mean (an ambiguity, never the first match).
        """
        if not portals:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for portal in portals:
                pipe.get(self.keys.idempotency(portal, key))
            holders = await pipe.execute()
        return {
            portal: decode_text(holder)
            for portal, holder in zip(portals, holders, strict=True)
            if holder is not None
        }
