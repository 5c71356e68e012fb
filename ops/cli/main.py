"""The ``callq`` command: parses arguments, loads settings, configures logging, dispatches.

Producer commands live in :mod:`ops.cli.jobs`; the worker, the sandbox and the demo here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from ops.cli import dead as dead_cli
from ops.cli import jobs as producer_cli
from ops.cli.logs import RedactingStream, configure_logging
from ops.cli.redis_check import RedisUnavailable, ensure_redis
from ops.cli.serve import add_serve_arguments, run_serve_command
from schemas.config import ConfigError, Settings, load_settings
from schemas.policy.redact import Redactor, known_secrets, number_spellings
from schemas.store.connect import close_client, redis_client
from schemas.store.errors import describe_redis_error

log = structlog.get_logger("callq")

Command = Callable[[argparse.Namespace, Settings], Awaitable[int]]


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = argparse.ArgumentParser(
        prog="callq", description="Bitrix24 phone callbacks through Redis and arq."
    )
    parser.add_argument("--config", type=Path, help="TOML file (default: $CALLQ_CONFIG or ./callq.toml)")
    parser.add_argument(
        "--redis-url", help="Redis URL (default: $CALLQ_REDIS_URL or redis://localhost:6379/0)"
    )
    parser.add_argument(
        "--key-prefix", help="prefix of every Redis key (default: $CALLQ_KEY_PREFIX or callq)"
    )
    parser.add_argument("--log-format", choices=["auto", "json", "console"], default="auto")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    worker = sub.add_parser("worker", help="run a worker: intake, scheduling, calls, outcomes")
    worker.add_argument("--concurrency", type=int, default=20, help="jobs in flight in this process")
    worker.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    worker.add_argument("--no-intake", action="store_true", help="do not read the intake stream")
    worker.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus /metrics on this port"
    )
    worker.add_argument(
        "--request-timeout",
        type=float,
        default=30.0,
        help="seconds one Bitrix24 request may take (default 30; Bitrix24 stops requests at 60)",
    )
    worker.add_argument(
        "--lease",
        type=_lease_seconds,
        default=20.0,
        help="seconds a worker that died holds its jobs: they are taken over (an attempt in flight ended "
        "OUTCOME_UNKNOWN) about this long after its last heartbeat (default 20, at least 2)",
    )
    worker.add_argument("--job-timeout", type=float, default=None, help=argparse.SUPPRESS)
    worker.add_argument("--sandbox", action="store_true",
                        help="run against a built-in sandbox portal (portal 'default', always open)")  # fmt: skip
    worker.add_argument(
        "--demo", action="store_true", help="with --sandbox: enqueue a sample job, print its outcome"
    )
    worker.add_argument(
        "--exit-after-demo", action="store_true", help="with --demo: stop once the outcome is printed"
    )

    sandbox = sub.add_parser("sandbox", help="run a local Bitrix24 portal for demos and tests")
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--port", type=int, default=8024)
    sandbox.add_argument("--code", default="sandboxsecret", help="webhook code of portal 'default' (user 1)")
    sandbox.add_argument("--rate", type=float, default=2.0)
    sandbox.add_argument("--burst", type=int, default=50)

    enqueue = sub.add_parser("enqueue", help="submit a callback")
    producer_cli.add_enqueue_arguments(enqueue)
    serve = sub.add_parser(
        "serve", help="the HTTP API: POST/GET/DELETE /v1/callbacks, /healthz, /readyz, /metrics"
    )
    add_serve_arguments(serve)
    check = sub.add_parser(
        "check", help="validate the configuration and probe each portal's webhook and lines"
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    dead = sub.add_parser("dead", help="dead letters: list, show, replay, purge")
    dead_cli.add_dead_arguments(dead)
    resume = sub.add_parser(
        "resume", help="lift a portal's halt (after fixing its credentials) or rate pause"
    )
    resume.add_argument("portal")
    listing = sub.add_parser("list", help="list pending jobs in order of run time")
    producer_cli.add_list_arguments(listing)
    for name, help_text in (
        ("status", "show a job's state or outcome"),
        ("cancel", "cancel a job not yet started"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument("id", help="job id or idempotency key")
        cmd.add_argument("--portal", help="the portal of an idempotency key (needed when several have it)")
        cmd.add_argument("--json", action="store_true", help="machine-readable output")
    return parser


def _lease_seconds(text: str) -> float:
    """``--lease``: a number of seconds, at least 2."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 2:
        raise argparse.ArgumentTypeError("must be at least 2 seconds")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``callq`` console script.

    Everything it prints goes through :class:`ops.cli.logs.RedactingStream` (numbers and secrets
    masked, the configured secrets and an ``enqueue --to`` number exactly), and so do its logs.
    """
    out, err = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    sys.stdout, sys.stderr = out, err
    try:
        return _main(argv, out, err)
    finally:
        sys.stdout, sys.stderr = out.raw, err.raw
        out.flush()
        err.flush()


def _main(argv: Sequence[str] | None, out: RedactingStream, err: RedactingStream) -> int:
    args = build_parser().parse_args(argv)
    overrides: dict[str, Any] = {
        k: v for k, v in (("redis_url", args.redis_url), ("key_prefix", args.key_prefix)) if v
    }
    try:
        settings = load_settings(os.environ, overrides=overrides, config_path=args.config)
    except ConfigError as exc:
        print(f"callq: configuration error: {exc}", file=sys.stderr)
        return 2
    redactor = Redactor(known_secrets(settings))
    numbers = _numbers_in_play(args, settings)
    for stream in (out, err):
        stream.redactor, stream.numbers = redactor, numbers
    if args.command == "sandbox":  # it prints its own webhook URL on purpose: a local test portal's code
        sys.stdout, sys.stderr = out.raw, err.raw
    json_output = None if args.log_format == "auto" else args.log_format == "json"
    configure_logging(
        json_output=json_output, level=args.log_level.upper(), redactor=redactor, stream=err.raw
    )
    try:
        return asyncio.run(_dispatch(args, settings))
    except KeyboardInterrupt:
        return 130
    except RedisUnavailable as exc:
        print(f"callq: {exc}", file=sys.stderr)
        return 2


def _numbers_in_play(args: argparse.Namespace, settings: Settings) -> tuple[str, ...]:
    """The number ``callq enqueue --to`` was given, in every spelling, to mask in what it prints."""
    if args.command != "enqueue":
        return ()
    portal = settings.portals.get(args.portal or "") or next(iter(settings.portals.values()), None)
    return number_spellings(args.to, portal.default_region if portal else None)


async def _resume(portal: str, settings: Settings, redis: Redis) -> int:
    from schemas.store.keys import Keys
    from schemas.store.ledger import Ledger

    ledger = Ledger(
        redis,
        keys=Keys(settings.key_prefix),
        retention_s=settings.outcome_retention_s,
        outcomes_maxlen=settings.outcomes_maxlen,
    )
    lifted, woken = await ledger.resume(portal)
    state = "resumed" if lifted else "was not halted or paused"
    print(f"portal {portal}: {state}; {woken} waiting job{'' if woken == 1 else 's'} woken")
    return 0


async def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "check":
        from worker.bitrix.preflight import run_check

        return await run_check(settings, as_json=args.json, out=sys.stdout)
    if args.command == "sandbox":
        from ops.cli.worker import serve_sandbox

        return await serve_sandbox(
            host=args.host, port=args.port, code=args.code, rate=args.rate, burst=args.burst
        )
    async with ensure_redis(settings, allow_throwaway=args.command == "worker" and args.sandbox) as ready:
        if args.command == "worker":
            from ops.cli.worker import run_worker_command

            return await run_worker_command(args, ready)
        if args.command == "serve":
            return await run_serve_command(args, ready)
        redis = redis_client(ready.redis_url)
        try:
            if args.command == "resume":
                return await _resume(args.portal, ready, redis)
            if args.command == "dead":
                return await dead_cli.dead(args, settings=ready, redis=redis, out=sys.stdout)
            handler = getattr(producer_cli, "list_jobs" if args.command == "list" else args.command)
            # sys.stdout is the masking stream now, not the one the handlers' defaults were bound to
            return int(await handler(args, settings=ready, redis=redis, out=sys.stdout))
        except RedisError as exc:
            print(f"callq {args.command}: {describe_redis_error(exc)}", file=sys.stderr)
            return 2
        finally:
            await close_client(redis)


if __name__ == "__main__":
    sys.exit(main())
