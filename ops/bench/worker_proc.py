"""A callq worker process configured from arguments, for benchmarks (no TOML, no env)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
from types import MappingProxyType
from zoneinfo import ZoneInfo

from ops.cli.assemble import build_callq_worker
from ops.cli.event_loop import DEFAULT_EVENT_LOOP, EVENT_LOOPS, run
from ops.cli.logs import configure_logging
from schemas.config import CallsConfig, PortalConfig, Settings
from schemas.jobqueue.pool import open_pool
from schemas.policy.followup import FollowTiming
from schemas.store.keys import Keys
from worker.service.app import WorkerOptions

ALWAYS_OPEN = MappingProxyType({day: ((0, 1440),) for day in range(7)})


def settings_for(
    redis_url: str,
    prefix: str,
    sandbox_url: str,
    portals: dict[str, tuple[float, int]],
    calls: CallsConfig | None = None,
) -> Settings:
    """Settings whose portals are sandbox portals (webhook code = portal name), always open; their
    calls followed as ``calls`` says (default: as configured by default, followed)."""
    return Settings(
        redis_url=redis_url,
        key_prefix=prefix,
        portals=MappingProxyType(
            {
                name: PortalConfig(
                    name=name,
                    webhook_url=f"{sandbox_url}/rest/1/{name}/",
                    timezone=ZoneInfo("UTC"),  # open around the clock: the zone changes nothing
                    default_region="RU",
                    hours=ALWAYS_OPEN,
                    rate=rate,
                    burst=burst,
                    calls=calls or CallsConfig(),
                )
                for name, (rate, burst) in portals.items()
            }
        ),
    )


async def main(args: argparse.Namespace) -> None:
    configure_logging(json_output=True)  # as in production, not structlog's development renderer
    portals = {}
    for spec in args.portal:
        name, rate, burst = spec.split(":")
        portals[name] = (float(rate), int(burst))
    calls = CallsConfig(
        follow=args.follow == "on",
        timing=FollowTiming(first_poll_s=args.first_poll, max_poll_s=max(args.first_poll, 1.0) * 4),
    )
    settings = settings_for(args.redis_url, args.prefix, args.sandbox_url, portals, calls)
    pool = await open_pool(settings.redis_url, Keys(settings.key_prefix).jobs)
    options = dataclasses.replace(
        WorkerOptions(),
        concurrency=args.concurrency,
        dedupe_and_rate_limit=not args.no_limits,
        voices_after_s=None,  # measure the callbacks alone
    )
    worker = build_callq_worker(settings, pool, options)
    try:
        with contextlib.suppress(asyncio.CancelledError):  # a signal stops it
            await worker.queue.run()
    finally:
        await worker.queue.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", required=True)
    parser.add_argument("--sandbox-url", required=True)
    parser.add_argument("--portal", action="append", default=[], help="NAME:RATE:BURST")
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--no-limits", action="store_true")
    parser.add_argument("--follow", choices=["on", "off"], default="on", help="follow each call to its end")
    parser.add_argument("--first-poll", type=float, default=FollowTiming().first_poll_s)
    parser.add_argument("--event-loop", choices=EVENT_LOOPS, default=DEFAULT_EVENT_LOOP)
    arguments = parser.parse_args()
    run(main(arguments), event_loop=arguments.event_loop)  # as `callq worker` does
