"""Following calls leaks nothing (issue 14): planted numbers and secrets, also sent back by the portal in
an event's ``data`` (its number, its failure reason), never appear in the call results, the records,
the outcome stream, ``callq serve``'s log of pushed and refused events, its answers, or the CLI."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from ops.redis_server import free_port
from schemas.wire.job import CallbackJob
from tests.support.calls import plant_followed_job
from tests.support.helpers import read_call_results, sandbox_portal
from tests.support.leaks import API_TOKEN, Written, redis_texts
from tests.support.processes import callq_env, serve_process, write_config

WEBHOOK_CODE = "wHk0deCa11sS3cret"
EVENT_TOKEN = "evT0kenCa11sS3cret77"
NUMBERS = ("+79117654321", "+79119876543")


def job(job_id: str, number: str) -> CallbackJob:
    return CallbackJob(
        job_id=job_id,
        portal="default",
        from_line="reg1332",
        to_number=number,
        text_to_pronounce="Hi",
        created_at="2026-11-30T00:00:00Z",
    )


def event(call_id: str, number: str, *, token: str, code: str = "603") -> dict[str, str]:
    """OnVoximplantCallEnd as a portal could send it: the number and secrets in its free text."""
    return {
        "event": "ONVOXIMPLANTCALLEND",
        "data[CALL_ID]": call_id,
        "data[PHONE_NUMBER]": number,
        "data[CALL_FAILED_CODE]": code,
        "data[CALL_FAILED_REASON]": f"Declined by {number} (8{number[2:]}) token {EVENT_TOKEN} {WEBHOOK_CODE}",
        "data[CALL_DURATION]": "0",
        "auth[application_token]": token,
    }


@pytest.mark.timeout(120)
async def test_call_results_and_pushed_events_leak_nothing(
    redis_url: str, prefix: str, redis: Redis, tmp_path: Path
) -> None:
    """One call ended by a push (declined, its reason full of planted values), one event refused (wrong
    token): nothing callq wrote or answered holds a full number or a secret."""
    written = Written(secrets={WEBHOOK_CODE, EVENT_TOKEN, API_TOKEN}, numbers=set(NUMBERS))
    url = f"http://127.0.0.1:{free_port()}/rest/1/{WEBHOOK_CODE}/"
    config = write_config(
        tmp_path / "callq.toml",
        {"default": {"webhook_url": url, "default_region": "RU", "calls": {"event_token": EVENT_TOKEN}}},
    )
    portal = sandbox_portal(url)
    for n, number in enumerate(NUMBERS):
        await plant_followed_job(redis, prefix, portal, job(f"job{n}", number), call_id=f"c-{n}")
    env = callq_env(
        CALLQ_CONFIG=str(config),
        CALLQ_REDIS_URL=redis_url,
        CALLQ_KEY_PREFIX=prefix,
        CALLQ_API_TOKENS=API_TOKEN,
    )
    auth = {"Authorization": f"Bearer {API_TOKEN}"}
    async with (
        serve_process(free_port(), env, log_level="DEBUG") as served,
        aiohttp.ClientSession() as session,
    ):
        events = f"{served.base}/v1/bitrix/events/default"
        async with session.post(events, data=event("c-0", NUMBERS[0], token=EVENT_TOKEN)) as resp:
            assert resp.status == 200
            written.add("POST events (pushed)", await resp.read())
        async with session.post(events, data=event("c-1", NUMBERS[1], token=WEBHOOK_CODE)) as resp:
            assert resp.status == 403
            written.add("POST events (refused)", await resp.read())
        for job_id in ("job0", "job1"):
            async with session.get(f"{served.base}/v1/callbacks/{job_id}", headers=auth) as resp:
                written.add(f"GET /v1/callbacks/{job_id}", await resp.read())
        async with session.get(f"{served.base}/metrics") as resp:
            written.add("GET /metrics", await resp.read())
    written.add("serve (stdout)", served.out)
    written.add("serve log", served.err)
    for args in (["status", "job0"], ["status", "job0", "--json"], ["list"], ["list", "--json"]):
        await written.cli(args, env)
    (result,) = await read_call_results(redis, prefix)
    assert (result["job_id"], result["result"]) == ("job0", "declined"), "the push was recorded"
    assert "Declined by" in result["reason"], "the reason is kept, masked"
    for label, text in (await redis_texts(redis, prefix)).items():
        written.add(label, text)
    assert "call.pushed" in written.texts["serve log"] and "call.push_refused" in written.texts["serve log"]
    leaks = written.leaks()
    assert not leaks, "\n".join(leaks)
