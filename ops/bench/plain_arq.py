"""The baselines callq is measured against: what a user would write instead, with bare arq.

``post`` jobs make the same aiohttp POST to the sandbox portal as callq (no dedupe, no rate limit,
no outcome record); ``noop`` jobs do nothing at all. Both count completions in one Redis counter
so the benchmark can time them; that one INCR is the only bookkeeping they do.

``--tuned`` runs them on arq's own worker as a performance-minded user would set it up: ``poll_delay``
0.05 s and ``queue_read_limit`` 1,000 (the headline baseline). Without it: arq's ``poll_delay`` 0.25 s
(callq's own) and arq's default ``queue_read_limit``.

``--batched`` runs them on callq's dispatch (:class:`schemas.jobqueue.worker.BatchClaimWorker`, 1,000 ids
per poll) instead of arq's own, to tell what callq's own work costs from what its dispatch saves.

Run as ``python -m ops.bench.plain_arq --redis-url … --queue … --mode post|noop [--tuned|--batched]``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import aiohttp
from arq.connections import RedisSettings, create_pool
from arq.worker import Worker, func

from ops.bench.common import run_until_stopped
from ops.cli.event_loop import DEFAULT_EVENT_LOOP, EVENT_LOOPS, run
from schemas.jobqueue.runner import QUEUE_READ_LIMIT
from schemas.jobqueue.worker import BatchClaimWorker

DONE_SUFFIX = ":done"
TUNED_POLL_DELAY_S = 0.05
DEFAULT_POLL_DELAY_S = 0.25


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
        poll_delay=TUNED_POLL_DELAY_S if args.tuned else DEFAULT_POLL_DELAY_S,
        keep_result=0,
        on_startup=startup,
        on_shutdown=shutdown,
        handle_signals=True,
        queue_read_limit=QUEUE_READ_LIMIT if args.batched or args.tuned else None,
    )
    await run_until_stopped(worker)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--mode", choices=["post", "noop"], required=True)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--batched", action="store_true", help="callq's batched claim, not arq's own")
    parser.add_argument(
        "--tuned", action="store_true", help="arq's own worker, poll 0.05 s, 1,000 ids a read"
    )
    parser.add_argument(
        "--event-loop", choices=EVENT_LOOPS, default=DEFAULT_EVENT_LOOP, help="as callq's processes"
    )
    arguments = parser.parse_args()
    run(main(arguments), event_loop=arguments.event_loop)
