"""The ``callq`` command: one table of verbs (:data:`VERBS`); parses arguments, loads settings,
configures logging, masks what it prints, and runs the verb.

Each verb lives in a module of this package (``worker``, ``serve``, ``jobs``: enqueue, status, list,
cancel; ``dead``, ``resume``, ``check``, ``events`` (bind OnVoximplantCallEnd), ``portal_lists``: lines, voices; ``sandbox``) as a :class:`~ops.cli.verb.Verb`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import structlog

from ops.cli import check, dead, events, jobs, portal_lists, resume, sandbox, serve, worker
from ops.cli.event_loop import DEFAULT_EVENT_LOOP, EVENT_LOOPS, run
from ops.cli.logs import RedactingStream, configure_logging
from ops.cli.redis_check import RedisUnavailable, ensure_redis
from ops.cli.verb import Verb
from schemas.config import ConfigError, Settings, load_settings
from schemas.policy.redact import Redactor, known_secrets, number_spellings

log = structlog.get_logger("callq")

VERBS: tuple[Verb, ...] = (
    worker.VERB,
    serve.VERB,
    jobs.ENQUEUE,
    jobs.STATUS,
    jobs.LIST,
    jobs.CANCEL,
    dead.VERB,
    resume.VERB,
    check.VERB,
    events.VERB,
    portal_lists.LINES,
    portal_lists.VOICES,
    sandbox.VERB,
)
"""Every verb of ``callq``, in the order ``callq --help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser: the common options, then one sub-parser per verb."""
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
    parser.add_argument(
        "--event-loop",
        choices=EVENT_LOOPS,
        default=DEFAULT_EVENT_LOOP,
        help=f"the event loop to run on (default: {DEFAULT_EVENT_LOOP})",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for verb in VERBS:
        verb.add_arguments(sub.add_parser(verb.name, help=verb.help))
    return parser


EXIT_BROKEN_PIPE = 128 + signal.SIGPIPE
"""The status a shell reports for a program that a closed pipe stopped (141)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``callq`` console script.

    Everything it prints goes through :class:`ops.cli.logs.RedactingStream` (numbers and secrets
    masked, the configured secrets and an ``enqueue --to`` number exactly), and so do its logs.
    """
    out, err = RedactingStream(sys.stdout), RedactingStream(sys.stderr)
    sys.stdout, sys.stderr = out, err
    try:
        try:
            return _main(argv, out, err)
        finally:
            sys.stdout, sys.stderr = out.raw, err.raw
            out.flush()
            err.flush()
    except BrokenPipeError:
        # the reader went away (`callq list | head -1`): stop quietly, as Unix tools do; what is
        # left in the buffer goes nowhere, so that the interpreter's own flush at exit finds no pipe
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


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
    verb = next(verb for verb in VERBS if verb.name == args.command)
    if not verb.masks_output:
        sys.stdout, sys.stderr = out.raw, err.raw
    json_output = None if args.log_format == "auto" else args.log_format == "json"
    configure_logging(
        json_output=json_output, level=args.log_level.upper(), redactor=redactor, stream=err.raw
    )
    try:
        return run(_dispatch(verb, args, settings), event_loop=args.event_loop)
    except KeyboardInterrupt:
        return 130
    except RedisUnavailable as exc:
        print(f"callq: {exc}", file=sys.stderr)
        return 2


def _numbers_in_play(args: argparse.Namespace, settings: Settings) -> tuple[str, ...]:
    """The number ``callq enqueue --to`` was given, in every spelling, to mask in what it prints."""
    if args.command != "enqueue" or not args.to:
        return ()
    portal = settings.portals.get(args.portal or "") or next(iter(settings.portals.values()), None)
    return number_spellings(args.to, portal.default_region if portal else None)


async def _dispatch(verb: Verb, args: argparse.Namespace, settings: Settings) -> int:
    if not verb.needs_redis:
        return await verb.run(args, settings)
    async with ensure_redis(settings, allow_throwaway=verb.throwaway_redis(args)) as ready:
        return await verb.run(args, ready)


if __name__ == "__main__":
    sys.exit(main())
