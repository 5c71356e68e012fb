"""``callq serve``: the HTTP way in (:mod:`producers.http`) plus ``/metrics``, until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys

from producers.http import serve
from schemas.config import ConfigError, Settings
from schemas.keys import Keys
from schemas.redis_url import close_client, redis_client
from schemas.secret import deployment_secret
from worker.config_watch import ConfigWatch, serve_config_check
from worker.metrics import Metrics, keep_gauges_fresh, metrics_routes


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``callq serve``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                        help="a browser origin allowed to call the API (repeatable), e.g. https://shop.example")  # fmt: skip
    parser.add_argument("--max-body-bytes", type=int, default=64 * 1024)
    parser.add_argument("--no-auth", action="store_true",
                        help="serve without bearer tokens when none is configured (local use only)")  # fmt: skip


async def run_serve_command(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until the first SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    metrics = Metrics(worker=False)
    redis = redis_client(settings.redis_url)
    keys = Keys(settings.key_prefix)
    gauges = asyncio.create_task(keep_gauges_fresh(metrics, redis, keys, settings.portals))
    secret = await deployment_secret(redis, keys)
    watch = ConfigWatch(
        redis, keys, settings, secret=secret, role="serve", on_mismatch=metrics.set_config_mismatch
    )
    await watch.check()
    watching = asyncio.create_task(watch.run())
    try:
        await serve(
            redis=redis,
            settings=settings,
            host=args.host,
            port=args.port,
            cors_origins=args.cors_origin,
            stop=stop,
            allow_no_auth=args.no_auth,
            max_body_bytes=args.max_body_bytes,
            extra_routes=metrics_routes(metrics),
            config_check=serve_config_check(watch),
            on_ready=lambda url: print(f"callq serve listening on {url}", flush=True),
        )
    except ConfigError as exc:
        print(f"callq: configuration error: {exc}", file=sys.stderr)
        return 2
    finally:
        for task in (gauges, watching):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await watch.withdraw()
        await close_client(redis)
    return 0
