"""Profile one worker's end-to-end path with pyinstrument: ``python -m ops.bench.profile [N]``.

Brings up a private Redis and sandbox, fills the intake with N jobs over 10 portals (limits high),
runs a worker in this process under the profiler until every job has an outcome, and prints the
call tree (time per function, in-process only; Redis and the sandbox run in their own processes).
It logs as a production worker does (JSON at INFO, to /dev/null), so logging's cost shows.
pyinstrument is a development dependency (``make install`` brings it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from typing import TextIO

from redis.asyncio import Redis

from ops.bench.common import callback_jobs, push_intake, wait_outcomes
from ops.bench.harness import bench_env
from ops.bench.worker_proc import settings_for
from ops.cli.assemble import build_callq_worker
from ops.cli.event_loop import run
from ops.cli.logs import configure_logging
from schemas.jobqueue.pool import open_pool
from schemas.store.keys import Keys
from worker.service.app import WorkerOptions

PORTALS = [f"p{n}" for n in range(10)]


async def profile(n: int, *, log_stream: TextIO) -> str:
    """Run n jobs through one in-process worker under pyinstrument; the text report. The worker's
    log lines go to ``log_stream``."""
    from pyinstrument import Profiler

    # as ops.bench.worker_proc and production do: JSON at INFO (the lines go nowhere here)
    configure_logging(json_output=True, level="INFO", stream=log_stream)
    with bench_env(dict.fromkeys(PORTALS, (100_000.0, 100_000))) as env:
        redis = Redis.from_url(env.redis_url)
        prefix = "profile"
        jobs = [
            j for i, p in enumerate(PORTALS) for j in callback_jobs(n // len(PORTALS), portal=p, offset=i * n)
        ]
        await push_intake(redis, prefix, jobs)
        settings = settings_for(
            env.redis_url, prefix, env.sandbox_url, dict.fromkeys(PORTALS, (100_000.0, 100_000))
        )
        pool = await open_pool(settings.redis_url, Keys(settings.key_prefix).jobs)
        worker = build_callq_worker(
            settings, pool, dataclasses.replace(WorkerOptions(), handle_signals=False)
        )
        profiler = Profiler(async_mode="enabled")
        profiler.start()
        task = asyncio.create_task(worker.queue.run())
        await wait_outcomes(redis, prefix, len(jobs), timeout_s=600)
        profiler.stop()
        task.cancel()
        await worker.queue.close()
        await redis.aclose()
    return str(profiler.output_text(unicode=True, color=False, show_all=False))


if __name__ == "__main__":
    with open(os.devnull, "w") as devnull:
        # on the event loop `callq worker` runs on
        print(run(profile(int(sys.argv[1]) if len(sys.argv) > 1 else 3000, log_stream=devnull)))
