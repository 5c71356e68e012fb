"""``callq worker``: a worker process (intake, scheduling, calls, outcomes), optionally against a built-in
sandbox portal with a sample job (``--sandbox --demo``, the quick start's ``make run``)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import secrets
import sys
from collections.abc import AsyncIterator
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from ops.cli.assemble import worker_services
from ops.cli.numbers import int_in, seconds_in
from ops.cli.verb import Verb
from ops.sandbox import Sandbox, SandboxPortal, running_sandbox
from producers.api import Producer
from producers.outcome_wait import wait_for_call_result, wait_for_outcome
from schemas.config import CallsConfig, PortalConfig, Settings
from schemas.policy.followup import FollowTiming
from schemas.store.connect import close_client, redis_client
from worker.service.process import Stopper, options_from_args, run_worker_process

log = structlog.get_logger("callq")

SANDBOX_CODE = "sandboxsecret"
DEMO_FOLLOW = FollowTiming(first_poll_s=3.0, max_poll_s=5.0, horizon_s=120.0)
"""The sandbox's calls end after 2 s: ask about them soon, so the demo shows each call's end at once."""
CALL_RESULT_TIMEOUT_S = 60.0
ALWAYS_OPEN = MappingProxyType({day: ((0, 1440),) for day in range(7)})

DEMO_JOB = {
    "from_line": "reg1332",
    "text_to_pronounce": "Callback request from the website, connecting you.",
    "voice": "usenglishfemale",
    "metadata": {"demo": True},
}


@contextlib.asynccontextmanager
async def sandbox_settings(settings: Settings) -> AsyncIterator[Settings]:
    """Settings whose portal ``default`` is an in-process sandbox portal, open around the clock."""
    sandbox = Sandbox([SandboxPortal(name="default", webhooks={(1, SANDBOX_CODE)})])
    async with running_sandbox(sandbox, host="127.0.0.1", port=0) as handle:
        portal = PortalConfig(
            name="default",
            webhook_url=handle.webhook_url("default"),
            oauth=None,
            timezone=ZoneInfo("UTC"),  # open around the clock: the zone changes nothing
            default_region="RU",
            hours=ALWAYS_OPEN,
            calls=CallsConfig(timing=DEMO_FOLLOW),
        )
        log.info("sandbox.started", url=handle.base_url)
        yield dataclasses.replace(settings, portals=MappingProxyType({"default": portal}))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``callq worker``."""
    parser.add_argument(
        "--concurrency", type=int_in(1, 10_000), default=20, help="jobs in flight in this process"
    )
    parser.add_argument("--burst", action="store_true", help="exit once the queue is empty")
    parser.add_argument("--no-intake", action="store_true", help="do not read the intake stream")
    parser.add_argument(
        "--metrics-port", type=int_in(0, 65535), default=None, help="serve Prometheus /metrics on this port"
    )
    parser.add_argument(
        "--request-timeout",
        type=seconds_in(0, 3600, above=True),
        default=30.0,
        help="seconds one Bitrix24 request may take (default 30; Bitrix24 stops requests at 60)",
    )
    parser.add_argument(
        "--lease",
        type=lease_seconds,
        default=20.0,
        help="seconds a worker that died holds its jobs: they are taken over (an attempt in flight ended "
        "OUTCOME_UNKNOWN) about this long after its last heartbeat (default 20, at least 2)",
    )
    parser.add_argument(
        "--job-timeout", type=seconds_in(0, 10**7), default=None, help=argparse.SUPPRESS
    )  # 0.2's, ignored
    parser.add_argument(
        "--sandbox",
        action="store_true",
        help="run against a built-in sandbox portal (portal 'default', always open)",
    )
    parser.add_argument(
        "--demo", action="store_true", help="with --sandbox: enqueue a sample job, print its outcome"
    )
    parser.add_argument(
        "--exit-after-demo", action="store_true", help="with --demo: stop once the outcome is printed"
    )


def lease_seconds(text: str) -> float:
    """``--lease``: a number of seconds, at least 2."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value >= 2:
        raise argparse.ArgumentTypeError("must be at least 2 seconds")
    return value


async def run_worker_command(args: argparse.Namespace, settings: Settings) -> int:
    """``callq worker``: run until a signal (or an empty queue with ``--burst``)."""
    async with contextlib.AsyncExitStack() as stack:
        if args.sandbox:
            settings = await stack.enter_async_context(sandbox_settings(settings))
        if not settings.portals:
            print(
                "callq worker: no portal is configured (set CALLQ_WEBHOOK_URL or write callq.toml)",
                file=sys.stderr,
            )
            return 2
        stopper = Stopper()
        stopper.install()
        demo = (
            asyncio.create_task(_demo(settings, stopper if args.exit_after_demo else None))
            if args.demo
            else None
        )
        options = options_from_args(args)
        code = await run_worker_process(
            settings, options, stopper=stopper, services=worker_services(settings, options)
        )
        if demo is None:
            return code
        if not demo.done():
            demo.cancel()
        try:
            succeeded = await demo
        except asyncio.CancelledError:
            succeeded = False
        return code or (0 if succeeded else 1)


async def _demo(settings: Settings, stopper: Stopper | None) -> bool:
    """Enqueue the sample job, wait for its outcome, print it; then wait for its call's end (the
    sandbox plays the call out) and print the call result: whether the client was reached. True if
    it succeeded and its call result arrived."""
    redis = redis_client(settings.redis_url)
    try:
        producer = Producer(redis, settings=settings)
        # a fresh number each run: a repeat within the dedupe window would be a duplicate
        number = f"8 (911) 123-{secrets.randbelow(100):02d}-{secrets.randbelow(100):02d}"
        submitted = await producer.submit({**DEMO_JOB, "to_number": number})
        log.info("demo.enqueued", job_id=submitted.job_id, status=str(submitted.status))
        outcome = await wait_for_outcome(producer.ledger, submitted.job_id, timeout_s=30)
        print(
            json.dumps(outcome, ensure_ascii=False, indent=2) if outcome else "demo: no outcome within 30 s"
        )
        sys.stdout.flush()
        succeeded = bool(outcome and outcome.get("status") == "succeeded")
        result = None
        if succeeded:
            result = await wait_for_call_result(
                producer.ledger, submitted.job_id, timeout_s=CALL_RESULT_TIMEOUT_S
            )
            _show_call_result(result)
    finally:
        await close_client(redis)
    if stopper is not None:
        stopper.stop_gracefully()
    return succeeded and result is not None


def _show_call_result(result: dict[str, Any] | None) -> None:
    """The demo's call result: one line saying whether the client was reached, then the JSON."""
    if result is None:
        print(f"demo: no call result within {CALL_RESULT_TIMEOUT_S:g} s")
    else:
        reached = "reached the client" if result.get("connected") else "did not reach the client"
        log.info("demo.call_result", result=result.get("result"), source=result.get("source"))
        print(f"demo: the callback {reached} ({result.get('result')}, learnt by {result.get('source')}):")
        print(json.dumps(result, ensure_ascii=False, indent=2))
    sys.stdout.flush()


VERB = Verb(
    name="worker",
    help="run a worker: intake, scheduling, calls, outcomes",
    add_arguments=add_arguments,
    run=run_worker_command,
    throwaway_redis=lambda args: bool(args.sandbox),
)
