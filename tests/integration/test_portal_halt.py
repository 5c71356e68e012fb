"""A portal refused as a whole halts once, for every job: a missing scope, a missing permission."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import aiohttp
from redis.asyncio import Redis
from structlog.testing import capture_logs

from ops.sandbox import Sandbox, SandboxPortal, running_sandbox
from producers.api import Producer
from schemas.store.keys import Keys
from schemas.store.ledger import Ledger
from tests.support.helpers import FAST, make_settings, running_worker, sandbox_portal, wait_for, wait_outcomes
from tests.support.processes import run_callq, write_config

TEXT = "Callback request"
JOBS = 200


async def test_a_missing_scope_halts_the_portal_once_and_no_job_dies(
    redis_url: str, prefix: str, redis: Redis
) -> None:
    """200 jobs against a webhook without `call`: one halt, no job dead, no attempt spent; after the
    scope is granted (the sandbox's control API) and `callq resume`, every job succeeds."""
    portal = SandboxPortal(name="default", webhooks={(1, "sandboxsecret")}, rate=1000.0, burst=1000)
    sandbox = Sandbox([portal.with_switches({"scopes": ["telephony"]})])
    async with running_sandbox(sandbox) as handle:
        url = handle.webhook_url("default")
        settings = make_settings(redis_url, prefix, {"default": sandbox_portal(url, rate=100.0, burst=20)})
        producer = Producer(redis, settings=settings)
        ids = [
            (
                await producer.enqueue(
                    from_line="reg1332", to_number=f"+7911123{n:04d}", text_to_pronounce=TEXT
                )
            ).job_id
            for n in range(JOBS)
        ]
        keys = Keys(prefix)
        with capture_logs() as logs:
            async with running_worker(settings) as worker:
                await wait_for(lambda: redis.exists(keys.portal_halt("default")), what="the portal's halt")
                await wait_for(lambda: _none_running(redis, keys), what="every refused attempt recorded")
                refused = [call for call in sandbox.calls() if call.fault == "scope"]
                halt = json.loads(await redis.get(keys.portal_halt("default")))
                assert halt["code"] == "insufficient_scope"

                async with aiohttp.ClientSession() as session:
                    patch = {"scopes": ["call", "telephony"]}
                    async with session.patch(
                        f"{handle.base_url}/_sandbox/portals/default", json=patch
                    ) as resp:
                        assert resp.status == 200
                env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQ_")}
                # the same configuration as the workers: `resume` names a configured portal
                env.update(CALLQ_REDIS_URL=redis_url, CALLQ_KEY_PREFIX=prefix, CALLQ_WEBHOOK_URL=url)
                env.update(CALLQ_TIMEZONE="UTC")
                code, out, err = await run_callq(["resume", "default"], env)
                assert code == 0 and out.startswith("portal default: resumed;"), err
                outcomes = await wait_outcomes(redis, prefix, JOBS, timeout_s=60)
                halts = worker.callbacks.metrics.portal_halts.labels(
                    portal="default", code="INSUFFICIENT_SCOPE"
                )
                halted_count = halts._value.get()

    assert sorted({o["status"] for o in outcomes}) == ["succeeded"], "no job died for the portal's fault"
    assert halted_count == 1 and len([e for e in logs if e["event"] == "portal.halted"]) == 1, "one halt"
    ledger = Ledger(redis, keys=keys, retention_s=60, outcomes_maxlen=1000)
    for job_id in ids:
        record = await ledger.read(job_id)
        assert record is not None
        spent = [entry for entry in record.attempt_log if entry.get("counts", True)]
        assert [entry.get("code") for entry in spent] == [None], "only the successful attempt counts"
    calls = sandbox.calls()
    assert len(calls) == JOBS + len(refused) and len(sandbox.calls(executed_only=True)) == JOBS
    assert 1 <= len(refused) <= FAST.concurrency, (
        "only requests in flight when the portal halted were refused"
    )
    print(f"\n200-job halt: {len(refused)} refused requests, {len(calls)} requests in all")


async def _none_running(redis: Redis, keys: Keys) -> bool:
    running: int = await redis.zcard(keys.running)
    return running == 0


async def test_a_missing_permission_halts_until_a_probe_finds_it_fixed(
    redis_url: str, prefix: str, redis: Redis, tmp_path: Path
) -> None:
    """ACCESS_DENIED (the webhook's user may not place calls) halts the portal with a hint and `callq status`
    says why; once the permission is given, the job that halted it probes when the halt lapses and every
    job succeeds without `callq resume`, none having spent an attempt."""
    portal = SandboxPortal(name="default", webhooks={(1, "sandboxsecret")}, rate=1000.0, burst=1000)
    sandbox = Sandbox([portal.with_switches({"permissions": ["manage_numbers"]})])
    async with running_sandbox(sandbox) as handle:
        url = handle.webhook_url("default")
        settings = make_settings(redis_url, prefix, {"default": sandbox_portal(url, rate=50.0, burst=5)})
        producer = Producer(redis, settings=settings)
        ids = [
            (
                await producer.enqueue(
                    from_line="reg1332", to_number=f"+7911123{n:04d}", text_to_pronounce=TEXT
                )
            ).job_id
            for n in range(20)
        ]
        keys = Keys(prefix)
        with capture_logs() as logs:
            async with running_worker(settings, dataclasses.replace(FAST, refused_s=2.0)):
                await wait_for(lambda: redis.exists(keys.portal_halt("default")), what="the portal's halt")
                config = write_config(tmp_path / "callq.toml", {"default": {"webhook_url": url}})
                env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQ_")}
                env.update(CALLQ_REDIS_URL=redis_url, CALLQ_KEY_PREFIX=prefix, CALLQ_CONFIG=str(config))
                code, out, _err = await run_callq(["status", ids[-1]], env)
                sandbox.set_switches("default", {"permissions": ["outgoing_call", "manage_numbers"]})
                outcomes = await wait_outcomes(redis, prefix, 20, timeout_s=30)
    assert code == 0 and "PORTAL HALTED: ACCESS_DENIED: Access denied" in out
    assert {o["status"] for o in outcomes} == {"succeeded"}
    (halted,) = [e for e in logs if e["event"] == "portal.halted"]
    assert halted["halt_s"] == 2.0 and "Outgoing call - Perform - any" in halted["hint"]
    denied = [c for c in sandbox.calls() if c.fault == "permission"]
    assert 1 <= len(denied) <= FAST.concurrency and len(sandbox.calls(executed_only=True)) == 20
