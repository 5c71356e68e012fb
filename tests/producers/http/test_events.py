"""``POST /v1/bitrix/events/{portal}`` refuses what it must: a wrong or missing application_token (403),
an unknown portal, a malformed body; always a JSON answer, never a 5xx; and nothing changes."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Awaitable
from typing import cast

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from producers.http.app import create_app
from schemas.config import CallsConfig, Settings
from schemas.wire.job import CallbackJob
from tests.support.calls import plant_followed_job
from tests.support.helpers import make_settings, read_call_results, sandbox_portal

Client = TestClient[web.Request, web.Application]
TOKEN = "app-token-0123456789abcdef"
JOB = CallbackJob(
    job_id="pushed1",
    portal="default",
    from_line="reg1332",
    to_number="+79111234567",
    text_to_pronounce="Hi",
    created_at="2026-11-30T00:00:00Z",
)
GOOD = {
    "event": "ONVOXIMPLANTCALLEND",
    "data[CALL_ID]": "c-1",
    "data[CALL_FAILED_CODE]": "200",
    "data[CALL_DURATION]": "12",
    "auth[application_token]": TOKEN,
}
FORM = "application/x-www-form-urlencoded"


@pytest.fixture
def settings(redis_url: str, prefix: str) -> Settings:
    """Portal ``default`` expecting pushes (its event_token set), portal ``quiet`` expecting none."""
    calls = CallsConfig(event_token=TOKEN)
    portal = sandbox_portal("http://127.0.0.1:9/rest/1/x/", calls=calls)
    quiet = sandbox_portal("http://127.0.0.1:9/rest/1/y/", name="quiet")
    return make_settings(redis_url, prefix, {"default": portal, "quiet": quiet}, api_tokens=())


@contextlib.asynccontextmanager
async def serving(redis: Redis, settings: Settings) -> AsyncIterator[Client]:
    """The API (events need no bearer token) with a followed job ``pushed1`` awaiting call ``c-1``."""
    await plant_followed_job(redis, settings.key_prefix, settings.portals["default"], JOB, call_id="c-1")
    app = create_app(redis=redis, settings=dataclasses.replace(settings), allow_no_auth=True)
    async with TestClient(TestServer(app)) as client:
        yield client


async def unchanged(redis: Redis, prefix: str, settings: Settings) -> bool:
    """The planted call is still awaited and nothing reached the outcome stream."""
    state = await cast(Awaitable[bytes | None], redis.hget(f"{prefix}:job:{JOB.job_id}", "call"))
    return state == b"awaiting" and await read_call_results(redis, prefix) == []


@pytest.mark.parametrize(
    ("path", "body", "content_type", "status"),
    [
        ("default", {**GOOD, "auth[application_token]": TOKEN[:-1] + "X"}, FORM, 403),
        ("default", {k: v for k, v in GOOD.items() if k != "auth[application_token]"}, FORM, 403),
        ("default", {**GOOD, "auth[application_token]": ""}, FORM, 403),
        ("quiet", GOOD, FORM, 403),  # a portal without event_token takes no push
        ("nowhere", GOOD, FORM, 403),  # an unknown portal: the same answer (which exist is not told)
        ("default", b'{"event": "ONVOXIMPLANTCALLEND"}', "application/json", 403),
        ("default", b"\xff\xfe\x00garbage=%zz&&==", FORM, 400),
        ("default", b"--x\r\nnot multipart", "multipart/form-data; boundary=y", 400),
        ("default", b"x" * (200 * 1024), FORM, 413),
    ],
)
async def test_refused_events_are_4xx_json_and_change_nothing(
    redis: Redis,
    prefix: str,
    settings: Settings,
    path: str,
    body: dict[str, str] | bytes,
    content_type: str,
    status: int,
) -> None:
    """Each refusal is a 4xx JSON problem; the awaited call and the outcome stream are untouched."""
    async with serving(redis, settings) as client:
        headers = {} if isinstance(body, dict) else {"Content-Type": content_type}
        resp = await client.post(f"/v1/bitrix/events/{path}", data=body, headers=headers)
        assert resp.status == status, await resp.text()
        assert resp.content_type in ("application/json", "application/problem+json")
        assert await resp.json()
    assert await unchanged(redis, prefix, settings)


@pytest.mark.parametrize(
    "fields",
    [
        {"data[CALL_DURATION]": "1e400"},  # infinity
        {"data[CALL_DURATION]": "1e12"},  # a number, too large for a date
        {"data[CALL_DURATION]": "1e300"},
        {"data[CALL_DURATION]": "nan"},
        {"data[CALL_DURATION]": "-5"},
        {"data[CALL_DURATION]": "twelve"},
        {"data[CALL_FAILED_CODE]": "x" * 5000},
        {"data[CALL_START_DATE]": "not a date"},
        {"data[CALL_ID]": ""},
        {"data[CALL_ID]": "someone-elses-call"},
        {"event": "ONVOXIMPLANTCALLINIT"},
        {"event": ""},
    ],
)
async def test_odd_fields_with_the_right_token_are_never_5xx(
    redis: Redis, prefix: str, settings: Settings, fields: dict[str, str]
) -> None:
    """Odd values from a portal holding the right token are read or ignored, answered 200 JSON: never 5xx."""
    async with serving(redis, settings) as client:
        resp = await client.post("/v1/bitrix/events/default", data={**GOOD, **fields})
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["ok"] is True


async def test_the_right_token_records_the_result(redis: Redis, prefix: str, settings: Settings) -> None:
    """The control: the same event with the right token ends the call (so the refusals above are real)."""
    async with serving(redis, settings) as client:
        resp = await client.post("/v1/bitrix/events/default", data=GOOD)
        assert resp.status == 200
        assert (await resp.json())["call"] == "ended"
    (result,) = await read_call_results(redis, prefix)
    assert (result["result"], result["source"]) == ("connected", "push")
    assert not await unchanged(redis, prefix, settings)
