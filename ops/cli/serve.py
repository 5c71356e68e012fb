"""``callq serve``: the HTTP way in (:mod:`producers.http.app`) plus ``/metrics``, until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from datetime import UTC, datetime

from ops.cli.numbers import int_in, seconds_in
from ops.cli.verb import Verb
from producers.http.app import NoTokensError, PublicNoAuthError, public_origins, serve
from producers.http.server import ConnectionTimeouts
from schemas.config import ConfigError, Settings
from schemas.config.drift import ConfigWatch, serve_config_check
from schemas.config.loopback import is_loopback_host
from schemas.store.connect import close_client, redis_client
from schemas.store.keys import Keys
from schemas.store.secret import deployment_secret
from worker.service.metrics import Metrics, keep_gauges_fresh, metrics_routes


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``callq serve``."""
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int_in(0, 65535), default=8080)
    parser.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser origin allowed to call the API (repeatable), e.g. https://shop.example",
    )
    parser.add_argument(
        "--public-url",
        action="append",
        default=[],
        metavar="URL",
        help="where browsers reach the dashboard (repeatable), e.g. https://callq.example behind a TLS "
        "proxy: its pages answer only for these hosts (and loopback) and take POSTs only from these origins",
    )
    parser.add_argument("--max-body-bytes", type=int_in(1, 2**30), default=64 * 1024)
    parser.add_argument(
        "--no-auth",
        action="store_true",
        help="serve without bearer tokens when none is configured (only on a loopback --host)",
    )
    defaults = ConnectionTimeouts()
    parser.add_argument(
        "--keepalive-timeout",
        type=seconds_in(0, 86400, above=True),
        default=defaults.keepalive_s,
        metavar="S",
        help=f"close a connection idle between requests after S seconds (default {defaults.keepalive_s:g})",
    )
    parser.add_argument(
        "--header-timeout",
        type=seconds_in(0, 86400, above=True),
        default=defaults.header_s,
        metavar="S",
        help=f"408 unless the request line and headers arrive within S seconds (default {defaults.header_s:g})",
    )
    parser.add_argument(
        "--body-timeout",
        type=seconds_in(0, 86400, above=True),
        default=defaults.body_s,
        metavar="S",
        help=f"408 unless a request body arrives within S seconds (default {defaults.body_s:g})",
    )


async def run_serve_command(args: argparse.Namespace, settings: Settings) -> int:
    """Serve until the first SIGTERM or SIGINT."""
    try:
        timeouts = _checked(args, settings)
    except ConfigError as exc:
        print(f"callq: configuration error: {exc}", file=sys.stderr)
        return 2
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
            on_ready=lambda urls: print(f"callq serve listening on {', '.join(urls)}", flush=True),
            timeouts=timeouts,
            public_urls=args.public_url,
            on_call_end=lambda record, end, final: metrics.count_call_end(
                record, end, ended=final, now=datetime.now(UTC)
            ),
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


def _checked(args: argparse.Namespace, settings: Settings) -> ConnectionTimeouts:
    """What ``serve`` itself refuses, said in the command line's terms (``--no-auth``, not
    ``allow_no_auth=True``); the connection timeouts.

    Raises:
        ConfigError: no token and no ``--no-auth``; ``--no-auth`` on an address that is not
            loopback; a timeout that is not positive.
    """
    if not settings.bearer_tokens() and not args.no_auth:  # plain and named ([api_tokens.NAME]) tokens
        raise NoTokensError(switch="--no-auth")
    if args.no_auth and not is_loopback_host(args.host):
        raise PublicNoAuthError(args.host, switch="--no-auth")
    public_origins(args.public_url)  # a bad one said before anything starts
    try:
        return ConnectionTimeouts(
            keepalive_s=args.keepalive_timeout, header_s=args.header_timeout, body_s=args.body_timeout
        )
    except ValueError as exc:
        raise ConfigError(str(exc).replace("_s must", " timeout must"), source="command line") from None


VERB = Verb(
    name="serve",
    help="the HTTP API: POST/GET/DELETE /v1/callbacks, /healthz, /readyz, /metrics",
    add_arguments=add_serve_arguments,
    run=run_serve_command,
)
