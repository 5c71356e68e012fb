"""The baselines callq is measured against: what a user would write instead, with bare arq.

``post`` jobs make the same aiohttp POST to the sandbox portal as callq (no dedupe, no rate limit,
no outcome record); ``noop`` jobs do nothing at all. Both count completions in one Redis counter
so the benchmark can time them; that one INCR is the only bookkeeping they do.

``--batched`` runs them on callq's dispatch (:class:`schemas.jobqueue.worker.BatchClaimWorker`, 1,000 ids
per poll) instead of arq's own, to tell what callq's own work costs from what its dispatch saves.

Run as ``python -m ops.bench.plain_arq --redis-url … --queue … --mode post|noop [--batched]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import aiohttp
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker, func

from ops.bench.common import run_until_stopped
from schemas.jobqueue.runner import QUEUE_READ_LIMIT
from schemas.jobqueue.worker import BatchClaimWorker

DONE_SUFFIX = ":done"


def dumps(data: Any) -> bytes:
    """JSON, as callq uses, so that serialisation costs the same."""
    return json.dumps(data, separators=(",", ":")).encode()


def loads(raw: bytes) -> Any:
    """JSON."""
    return json.loads(raw)


async def post(ctx: dict[str, Any], url: str, number: str) -> None:
    """The job a user would write: POST the callback, count it."""
    params = {"FROM_LINE": "reg1332", "TO_NUMBER": number, "TEXT_TO_PRONOUNCE": "Hi"}
    async with ctx["session"].post(url, json=params) as response:
        await response.read()
    await ctx["redis"].incr(ctx["done_key"])


async def noop(ctx: dict[str, Any], url: str, number: str) -> None:
    """Nothing but the count."""
    await ctx["redis"].incr(ctx["done_key"])


async def main(args: argparse.Namespace) -> None:
    pool = await create_pool(
        RedisSettings.from_dsn(args.redis_url),
        job_serializer=dumps,
        job_deserializer=loads,
        default_queue_name=args.queue,
    )

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["session"] = aiohttp.ClientSession()
        ctx["done_key"] = args.queue + DONE_SUFFIX

    async def shutdown(ctx: dict[str, Any]) -> None:
        await ctx["session"].close()

    worker = (BatchClaimWorker if args.batched else Worker)(
        functions=[func(post if args.mode == "post" else noop, name="job")],
        redis_pool=pool,
        queue_name=args.queue,
        job_serializer=dumps,
        job_deserializer=loads,
        max_jobs=args.concurrency,
        poll_delay=0.25,
        keep_result=0,
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=True,
        queue_read_limit=QUEUE_READ_LIMIT if args.batched else None,
    )
    await run_until_stopped(worker)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--mode", choices=["post", "noop"], required=True)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--batched", action="store_true", help="callq's batched claim, not arq's own")
    asyncio.run(main(parser.parse_args()))
