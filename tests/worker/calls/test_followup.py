"""Each callback followed to its real end against the sandbox: 200 callbacks with a mix of results end in
exactly one final call result each, matching the sandbox's record; busy and unanswered ones are redialled
per policy and never more; push and pull both deliver; a forged event changes nothing."""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxHandle
from ops.sandbox.calls import CALL_END_EVENT, Handler
from producers.api import Producer
from schemas.config import CallsConfig, Settings
from schemas.policy.call_result import CallKind
from schemas.policy.followup import FollowTiming
from schemas.policy.redial import RedialPolicy
from schemas.store.keys import Keys
from tests.support.helpers import (
    FAST,
    make_settings,
    read_call_results,
    running_worker,
    sandbox_portal,
    serve_on_free_port,
    wait_for,
)

MIX = {"connected": 4, "busy": 2, "no_answer": 2, "declined": 1, "invalid_number": 1}
REDIALLED = {"busy", "no_answer"}
MAX_REDIALS = 2
TOKEN = "event-token-0123456789"
OPTIONS = dataclasses.replace(FAST, concurrency=50, follow_every_s=0.05)


def settings_for(redis_url: str, prefix: str, portal: SandboxHandle, *, token: str | None) -> Settings:
    calls = CallsConfig(
        timing=FollowTiming(first_poll_s=0.3, max_poll_s=0.5, horizon_s=60),
        event_token=token,
        redial=RedialPolicy(
            redial_on=frozenset({CallKind.BUSY, CallKind.NO_ANSWER}), delays_s=(0.1,), max_redials=MAX_REDIALS
        ),
    )
    return make_settings(
        redis_url,
        prefix,
        {"default": sandbox_portal(portal.webhook_url("default"), calls=calls, rate=500.0, burst=500)},
    )


async def run_mix(
    redis: Redis, prefix: str, settings: Settings, sandbox: Sandbox, count: int
) -> list[dict[str, Any]]:
    sandbox.player.seed = 7
    sandbox.player.set_mix("default", MIX, duration_s=0.2)
    producer = Producer(redis, settings=settings)
    async with running_worker(settings, OPTIONS):
        for n in range(count):
            await producer.enqueue(from_line="reg1332", to_number=f"+7911{n:07d}", text_to_pronounce="Hi")

        async def all_ended() -> list[dict[str, Any]]:
            results = await read_call_results(redis, prefix)
            return results if len(results) >= count else []

        results: list[dict[str, Any]] = await wait_for(
            all_ended, timeout_s=60, poll_s=0.2, what=f"{count} call results"
        )
        return results


def check_against_sandbox(results: list[dict[str, Any]], sandbox: Sandbox, count: int) -> None:
    played = sandbox.player.results("default")
    by_number: dict[str, list[str]] = {}
    for call in sandbox.player.calls:
        by_number.setdefault(call.number, []).append(call.result)
    assert len({r["job_id"] for r in results}) == len(results) == count, "one final call result per job"
    for result in results:
        assert result["result"] == played[result["call_id"]], "the final result is the sandbox's last call"
        assert "*" in result["to_number"], "numbers are masked"
    for number, ends in by_number.items():
        assert len(ends) <= 1 + MAX_REDIALS, number
        assert all(end in REDIALLED for end in ends[:-1]), f"redialled only after busy/no answer: {ends}"
        if ends[-1] in REDIALLED:
            assert len(ends) == 1 + MAX_REDIALS, f"redialled until exhausted: {ends}"


@pytest.mark.timeout(90)
async def test_pull_only_every_result_arrives(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """With push off (no event token, no handler), 200 callbacks' results all arrive by pull, redials per policy."""
    settings = settings_for(redis_url, prefix, portal, token=None)
    results = await run_mix(redis, prefix, settings, sandbox, 200)
    check_against_sandbox(results, sandbox, 200)
    assert {r["call_id"] for r in results} <= set(sandbox.player.results())
    kinds = Counter(r["ended_by"] for r in results)
    assert kinds["connected"] and kinds["not_redialled"] and kinds["redials_exhausted"], kinds
    assert await redis.zcard(Keys(prefix).calls) == 0


@pytest.mark.timeout(90)
async def test_push_delivers_and_forged_events_are_refused(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """With a handler bound, ends arrive by push (statistics are asked for far less); a wrong token is 403."""
    settings = settings_for(redis_url, prefix, portal, token=TOKEN)
    # pull only late: the pushes come first
    calls = dataclasses.replace(
        settings.portals["default"].calls, timing=FollowTiming(first_poll_s=20, horizon_s=60)
    )
    settings = make_settings(
        redis_url, prefix, {"default": dataclasses.replace(settings.portals["default"], calls=calls)}
    )
    async with serve_on_free_port(redis, dataclasses.replace(settings, api_tokens=("x" * 32,))) as (
        host,
        port,
    ):
        url = f"http://{host}:{port}/v1/bitrix/events/default"
        sandbox.player.bind("default", _handler(url, TOKEN))
        results = await run_mix(redis, prefix, settings, sandbox, 50)
        check_against_sandbox(results, sandbox, 50)
        assert all(r["source"] == "push" for r in results)
        assert sandbox.calls(method="voximplant.statistic.get") == []
        # a forged end for a known call changes nothing
        async with aiohttp.ClientSession() as session:
            form = {
                "event": "ONVOXIMPLANTCALLEND",
                "data[CALL_ID]": results[0]["call_id"],
                "data[CALL_FAILED_CODE]": "486",
                "auth[application_token]": "forged",
            }
            async with session.post(url, data=form) as response:
                assert response.status == 403
    assert len(await read_call_results(redis, prefix)) == 50


def _handler(url: str, token: str) -> Handler:
    return Handler(CALL_END_EVENT, url, token)
