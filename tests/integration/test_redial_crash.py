"""A redial whose worker is SIGKILLed while ``dialling`` (its request sent, no answer yet): a real
``callq worker`` process. The job ends in one outcome and one final call result, ``unknown``: the
redial is never sent again blindly (the client may have been rung)."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import cast

import pytest
from redis.asyncio import Redis

from ops.sandbox import Fault, Sandbox, SandboxHandle
from producers.api import Producer
from schemas.store.keys import Keys
from tests.support.helpers import (
    TEXT,
    called_numbers,
    make_settings,
    read_call_results,
    read_outcomes,
    sandbox_portal,
    wait_for,
)
from tests.support.processes import new_worker, stop_all, write_config

NUMBER = "+79111234567"


@pytest.mark.timeout(90)
async def test_a_redial_killed_while_dialling_ends_unknown_and_is_never_resent(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle, tmp_path: Path
) -> None:
    """The first call ends busy, the redial's request hangs, its worker is SIGKILLed: another worker ends
    the job's call `unknown` once the redial's lease lapses, after exactly two callback.start requests."""
    url = portal.webhook_url("default")
    calls = {"first_poll": 1, "max_poll": 1, "horizon": 600, "redial_delays": [1], "max_redials": 3}
    config = write_config(
        tmp_path / "callq.toml", {"default": {"webhook_url": url, "default_region": "RU", "calls": calls}}
    )
    sandbox.player.set_mix("default", {"busy": 1}, duration_s=0.2)
    producer = Producer(redis, settings=make_settings(redis_url, prefix, {"default": sandbox_portal(url)}))
    job = await producer.enqueue(from_line="reg1332", to_number=NUMBER, text_to_pronounce=TEXT)
    record_key = Keys(prefix).job(job.job_id)

    async def call_state(*wanted: str) -> bool:
        raw = await cast(Awaitable[bytes | None], redis.hget(record_key, "call"))
        return raw is not None and raw.decode() in wanted

    first = new_worker(tmp_path, config, redis_url, prefix, "first", "--request-timeout", "5", "--lease", "3")
    second = new_worker(
        tmp_path, config, redis_url, prefix, "second", "--request-timeout", "5", "--lease", "3"
    )
    try:
        first.start()
        await wait_for(lambda: call_state("redial"), timeout_s=30, what="the busy call's redial")
        sandbox.add_faults([Fault.hang()])
        await wait_for(lambda: _requests(sandbox, 2), timeout_s=30, poll_s=0.01, what="the redial's request")
        first.kill()
        assert await call_state("dialling"), "killed while the redial was in flight"
        second.start()
        await wait_for(lambda: _call_results(redis, prefix), timeout_s=45, what="the final call result")
    finally:
        await stop_all(first, second)
    (result,) = await read_call_results(redis, prefix)
    assert (result["result"], result["ended_by"], result["redials"]) == ("unknown", "unknown", 1), result
    assert result["connected"] is False
    (outcome,) = await read_outcomes(redis, prefix)
    assert (outcome["job_id"], outcome["status"]) == (job.job_id, "succeeded")
    assert called_numbers(sandbox) == [NUMBER, NUMBER], "the redial was sent once, never again"
    assert await call_state("ended")
    attempts = await cast(Awaitable[bytes], redis.hget(record_key, "attempts"))
    assert int(attempts) == 2


async def _requests(sandbox: Sandbox, count: int) -> bool:
    return len(sandbox.calls()) >= count


async def _call_results(redis: Redis, prefix: str) -> bool:
    return bool(await read_call_results(redis, prefix))
