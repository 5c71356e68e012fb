"""Dead letters through the real CLI: list, show with every attempt, replay, purge."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from ops.sandbox import Fault, Sandbox, SandboxHandle
from producers.api import Producer
from schemas.store.keys import Keys
from tests.support.helpers import make_settings, running_worker, sandbox_portal, wait_outcomes
from tests.support.processes import callq_json, cli_env, run_callq

TEXT = "Callback request"


async def test_permanent_error_then_replay_succeeds(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """ERROR_CORE: dead after exactly one request; `callq dead replay` makes a linked job that succeeds."""
    url = portal.webhook_url("default")
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(url)})
    env = cli_env(redis_url, prefix, url)
    sandbox.add_faults([Fault.error(400, "ERROR_CORE", "Could not find config for number reg1332")])
    first = await Producer(redis, settings=settings).enqueue(
        from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT, idempotency_key="lead-7"
    )
    async with running_worker(settings):
        (dead,) = await wait_outcomes(redis, prefix, 1)
        assert (dead["status"], dead["error"]["code"], dead["attempts"]) == ("dead", "ERROR_CORE", 1)
        assert len(sandbox.calls()) == 1

        listed = await callq_json(["dead", "list", "--code", "error_core", "--json"], env)
        assert [row["job_id"] for row in listed] == [first.job_id]
        shown = await callq_json(["dead", "show", "lead-7", "--json"], env)
        (attempt,) = shown["attempt_log"]
        assert (attempt["http_status"], attempt["code"]) == (400, "ERROR_CORE")
        assert (
            "Could not find config" in attempt["description"]
            and "started_at" in attempt
            and "ended_at" in attempt
        )

        code, out, err = await run_callq(["dead", "replay", first.job_id, "--json"], env)
        assert code == 0, err
        (row,) = json.loads(out)
        assert row["replayed"] == first.job_id and row["status"] == "scheduled"
        outcomes = await wait_outcomes(redis, prefix, 2)
    replay = outcomes[1]
    assert (replay["status"], replay["replay_of"], replay["job_id"]) == (
        "succeeded",
        first.job_id,
        row["job_id"],
    )
    assert replay["attempts"] == 1 and replay["idempotency_key"] == "lead-7"
    assert len(sandbox.calls()) == 2
    assert await callq_json(["dead", "list", "--json"], env) == []
    assert (await callq_json(["status", "lead-7", "--json"], env))["job_id"] == row["job_id"]
    code, _out, _err = await run_callq(["dead", "replay", first.job_id], env)
    assert code == 1, "a replayed job is no longer dead"


async def test_purge_removes_dead_jobs(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """`callq dead purge --older-than` keeps recent dead jobs; `purge` alone removes them all."""
    url = portal.webhook_url("default")
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(url)})
    env = cli_env(redis_url, prefix, url)
    sandbox.add_faults([Fault.error(400, "ERROR_CORE", "Could not find line reg1332")] * 2)
    producer = Producer(redis, settings=settings)
    for n in range(2):
        await producer.enqueue(from_line="reg1332", to_number=f"+7911123456{n}", text_to_pronounce=TEXT)
    async with running_worker(settings):
        await wait_outcomes(redis, prefix, 2)
    assert await callq_json(["dead", "purge", "--older-than", "1h", "--json"], env) == {"purged": 0}
    assert await callq_json(["dead", "purge", "--json"], env) == {"purged": 2}
    assert await redis.zcard(Keys(prefix).dead) == 0
    assert await callq_json(["dead", "list", "--json"], env) == []
