"""No job without an outcome, whatever Redis does: stalls and kills longer than an attempt's lease.

Real ``callq worker`` processes (lease 3 s) against a private ``redis-server`` and the in-process
sandbox. A worker alive through the outage keeps the result it got and writes it once Redis is back
(never an ``OUTCOME_UNKNOWN`` for a known result); a worker that died with its request in flight,
whose arq job was given up, has its attempt ended by the reconciler within the documented bound.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ops.redis_server import RedisServer
from ops.sandbox import Fault, Sandbox, SandboxPortal, running_sandbox
from producers.api import Producer
from schemas.store.keys import Keys
from tests.support.helpers import make_settings, sandbox_portal, wait_for, wait_outcomes
from tests.support.processes import WorkerProcess, new_worker, until_logged, write_config

TEXT = "Callback request"
WORKER_ARGS = ("--request-timeout", "10", "--lease", "3")
JOBS = 8
BOUND_S = 8 + 3 + 0.75 + 3
"""Redis back → orphan ended: the judge's grace (8 s) + the lease (3 s) + a reconcile interval
(0.75 s at lease 3), plus 3 s for a loaded machine."""


def numbers(count: int) -> list[str]:
    """Distinct valid Russian mobile numbers."""
    return [f"+7911{n:07d}" for n in range(count)]


async def enqueue(redis: Redis, redis_url: str, prefix: str, url: str, count: int) -> list[str]:
    """``count`` jobs due now; their ids."""
    producer = Producer(redis, settings=make_settings(redis_url, prefix, {"default": sandbox_portal(url)}))
    ids = []
    for number in numbers(count):
        submitted = await producer.enqueue(from_line="reg1332", to_number=number, text_to_pronounce=TEXT)
        ids.append(submitted.job_id)
    return ids


def workers(tmp_path: Path, url: str, redis_url: str, prefix: str, *names: str) -> list[WorkerProcess]:
    """Worker processes (not started) for the sandbox portal at ``url``."""
    config = write_config(tmp_path / "callq.toml", {"default": {"webhook_url": url, "default_region": "RU"}})
    return [new_worker(tmp_path, config, redis_url, prefix, name, *WORKER_ARGS) for name in names]


async def calls_seen(sandbox: Sandbox, count: int) -> None:
    """Wait until the sandbox received ``count`` callback requests."""

    async def probe() -> bool:
        return len(sandbox.calls()) >= count

    await wait_for(probe, timeout_s=30, poll_s=0.02, what=f"{count} requests at the sandbox")


def assert_known_results_kept(found: list[dict[str, object]], sandbox: Sandbox) -> None:
    """Every job succeeded once, with the CALL_ID the sandbox gave it; each number was called once."""
    assert Counter(o["status"] for o in found) == {"succeeded": JOBS}, found
    assert len({o["job_id"] for o in found}) == JOBS
    calls = sandbox.calls()
    assert Counter(str(c.params["TO_NUMBER"]) for c in calls) == Counter(numbers(JOBS))
    assert {o["call_id"] for o in found} == {c.call_id for c in calls}


@pytest.mark.timeout(90)
async def test_a_redis_stall_longer_than_the_lease_keeps_every_result(prefix: str, tmp_path: Path) -> None:
    """Redis paused for writes 6 s (twice the lease) while 8 slow requests are in flight: all succeed, once."""
    sandbox = Sandbox([SandboxPortal(name="default", webhooks={(1, "code")}, rate=1000.0, burst=1000)])
    sandbox.add_faults([Fault.delay(2.5)] * JOBS)
    with RedisServer(tmp_path) as server:
        redis = Redis.from_url(server.url)
        async with running_sandbox(sandbox) as portal:
            url = portal.webhook_url("default")
            procs = workers(tmp_path, url, server.url, prefix, "first", "second")
            try:
                for proc in procs:
                    proc.start()
                await enqueue(redis, server.url, prefix, url, JOBS)
                await calls_seen(sandbox, JOBS)
                await redis.execute_command("CLIENT", "PAUSE", 6000, "WRITE")
                found = await wait_outcomes(redis, prefix, JOBS, timeout_s=40)
                running = await redis.zcard(Keys(prefix).running)
            finally:
                for proc in procs:
                    proc.stop()
                await redis.aclose()
    assert_known_results_kept(found, sandbox)
    assert running == 0


@pytest.mark.timeout(90)
async def test_a_redis_kill_longer_than_the_lease_keeps_every_result(prefix: str, tmp_path: Path) -> None:
    """Redis SIGKILLed and back 6 s later (AOF) while 8 slow requests are in flight: all succeed, once."""
    sandbox = Sandbox([SandboxPortal(name="default", webhooks={(1, "code")}, rate=1000.0, burst=1000)])
    sandbox.add_faults([Fault.delay(3.0)] * JOBS)
    with RedisServer(tmp_path, appendonly=True, extra_args=("--appendfsync", "always")) as server:
        redis = Redis.from_url(server.url)
        async with running_sandbox(sandbox) as portal:
            url = portal.webhook_url("default")
            procs = workers(tmp_path, url, server.url, prefix, "first", "second")
            try:
                for proc in procs:
                    proc.start()
                await enqueue(redis, server.url, prefix, url, JOBS)
                await calls_seen(sandbox, JOBS)
                await asyncio.to_thread(server.stop, kill=True)
                await asyncio.sleep(6.0)  # the outage itself, longer than the lease
                await asyncio.to_thread(server.start)
                found = await wait_outcomes(redis, prefix, JOBS, timeout_s=40)
            finally:
                for proc in procs:
                    proc.stop()
                await redis.aclose()
    assert_known_results_kept(found, sandbox)


@pytest.mark.timeout(90)
async def test_an_orphan_is_ended_within_the_bound(prefix: str, tmp_path: Path) -> None:
    """A worker SIGKILLed mid-request, its arq job gone and Redis killed too: once Redis is back, the
    reconciler of another worker ends the attempt dead/OUTCOME_UNKNOWN within the bound; one call."""
    sandbox = Sandbox([SandboxPortal(name="default", webhooks={(1, "code")}, rate=1000.0, burst=1000)])
    sandbox.add_faults([Fault.hang()])
    with RedisServer(tmp_path, appendonly=True, extra_args=("--appendfsync", "always")) as server:
        redis = Redis.from_url(server.url)
        async with running_sandbox(sandbox) as portal:
            url = portal.webhook_url("default")
            doomed, judge = workers(tmp_path, url, server.url, prefix, "doomed", "judge")
            try:
                doomed.start()
                (job_id,) = await enqueue(redis, server.url, prefix, url, 1)
                await calls_seen(sandbox, 1)
                doomed.kill()
                keys = Keys(prefix)
                # arq gave the job up: no queue entry, no arq job; only the record says `running`
                await redis.zrem(keys.queue, keys.jobs.member(job_id))
                await redis.delete(keys.jobs.job(job_id), f"arq:in-progress:{keys.jobs.member(job_id)}")
                judge.start()
                await until_logged(judge, "worker.started")
                await asyncio.to_thread(server.stop, kill=True)
                await asyncio.sleep(4.0)  # the outage itself
                await asyncio.to_thread(server.start)
                back = time.monotonic()
                (outcome,) = await wait_outcomes(redis, prefix, 1, timeout_s=BOUND_S + 10)
                took_s = time.monotonic() - back
            finally:
                doomed.kill()
                judge.stop()
                await redis.aclose()
    print(f"orphan ended {took_s:.1f} s after Redis came back (bound {BOUND_S} s)")
    assert (outcome["job_id"], outcome["status"]) == (job_id, "dead")
    assert outcome["error"]["code"] == "OUTCOME_UNKNOWN"
    assert took_s <= BOUND_S, f"ended {took_s:.1f} s after Redis came back (bound {BOUND_S} s)"
    assert len(sandbox.calls()) == 1
