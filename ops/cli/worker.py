"""``callq worker`` (optionally against a built-in sandbox portal, with a sample job) and ``callq sandbox``."""

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

import structlog

from ops.cli.assemble import worker_services
from ops.sandbox import Sandbox, SandboxHandle, SandboxPortal, running_sandbox, serve_forever
from producers.api import Producer
from producers.outcome_wait import wait_for_outcome
from schemas.config import PortalConfig, Settings
from schemas.store.connect import close_client, redis_client
from worker.service.process import Stopper, options_from_args, run_worker_process

log = structlog.get_logger("callq")

SANDBOX_CODE = "sandboxsecret"
ALWAYS_OPEN = MappingProxyType({day: ((0, 1440),) for day in range(7)})

DEMO_JOB = {
    "from_line": "reg1332",
    "text_to_pronounce": "Callback request from the website, connecting you.",
    "voice": "ruinternalfemale",
    "metadata": {"demo": True},
}


async def serve_sandbox(*, host: str, port: int, code: str, rate: float, burst: int) -> int:
    """``callq sandbox``: serve a portal ``default`` until interrupted."""
    sandbox = Sandbox([SandboxPortal(name="default", webhooks={(1, code)}, rate=rate, burst=burst)])

    def announce(handle: SandboxHandle) -> None:
        # The sandbox's own code, not a real secret: the person needs it to point callq here.
        print(
            f"sandbox portal 'default' listening; use CALLQ_WEBHOOK_URL={handle.webhook_url('default')}",
            flush=True,
        )

    await serve_forever(sandbox, host=host, port=port, on_ready=announce)
    return 0


@contextlib.asynccontextmanager
async def sandbox_settings(settings: Settings) -> AsyncIterator[Settings]:
    """Settings whose portal ``default`` is an in-process sandbox portal, open around the clock."""
    sandbox = Sandbox([SandboxPortal(name="default", webhooks={(1, SANDBOX_CODE)})])
    async with running_sandbox(sandbox, host="127.0.0.1", port=0) as handle:
        portal = PortalConfig(
            name="default",
            webhook_url=handle.webhook_url("default"),
            oauth=None,
            default_region="RU",
            hours=ALWAYS_OPEN,
        )
        log.info("sandbox.started", url=handle.base_url)
        yield dataclasses.replace(settings, portals=MappingProxyType({"default": portal}))


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
    """Enqueue the sample job, wait for its outcome, print it. True if it succeeded."""
    redis = redis_client(settings.redis_url)
    try:
        producer = Producer(redis, settings=settings)
        # a fresh number each run: a repeat within the dedupe window would be a duplicate
        number = f"8 (911) 123-{secrets.randbelow(100):02d}-{secrets.randbelow(100):02d}"
        submitted = await producer.submit({**DEMO_JOB, "to_number": number})
        log.info("demo.enqueued", job_id=submitted.job_id, status=str(submitted.status))
        outcome = await wait_for_outcome(producer.ledger, submitted.job_id, timeout_s=30)
    finally:
        await close_client(redis)
    print(json.dumps(outcome, ensure_ascii=False, indent=2) if outcome else "demo: no outcome within 30 s")
    sys.stdout.flush()
    if stopper is not None:
        stopper.stop_gracefully()
    return bool(outcome and outcome.get("status") == "succeeded")
