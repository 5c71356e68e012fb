"""The sandbox portal's REST routes as seen by a real aiohttp client."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from ops.sandbox import Sandbox, SandboxPortal, running_sandbox
from tests.support.helpers import FakeClock
from tests.support.sandbox import CALLBACK, CALLBACK_PARAMS, TIME_FIELDS, SandboxEnv, post_json


@dataclass
class Env(SandboxEnv):
    clock: FakeClock

    @property
    def url(self) -> str:
        return self.handle.webhook_url("default")


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    clock = FakeClock()
    sandbox = Sandbox(
        [
            SandboxPortal(name="default", webhooks={(1, "sandboxsecret")}, rest_lines={"rest7"}),
            SandboxPortal(name="tight", webhooks={(3, "tightsecret")}, rate=0.001, burst=5),
        ],
        clock=clock,
    )
    async with running_sandbox(sandbox) as handle, aiohttp.ClientSession() as session:
        yield Env(sandbox, handle, session, clock)


async def test_callback_start_success_shape(env: Env) -> None:
    """A valid callback.start answers 200 with RESULT, a Bitrix-shaped CALL_ID and a time object."""
    async with env.session.post(env.url + CALLBACK, json=CALLBACK_PARAMS) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        body = await response.json()
    assert set(body) == {"result", "time"}
    assert body["result"]["RESULT"] is True
    assert re.fullmatch(r"callback\.[0-9a-f]{32}\.\d{10}", body["result"]["CALL_ID"])
    assert set(body["time"]) == TIME_FIELDS
    [call] = env.sandbox.calls(portal="default", executed_only=True)
    assert (call.call_id, call.status, call.params) == (body["result"]["CALL_ID"], 200, CALLBACK_PARAMS)


async def test_rest_app_line_answers_null_call_id(env: Env) -> None:
    """A REST-app line answers RESULT true with CALL_ID null."""
    status, body = await post_json(env.session, env.url + CALLBACK, {"FROM_LINE": "rest7", "TO_NUMBER": "1"})
    assert (status, body["result"]) == (200, {"RESULT": True, "CALL_ID": None})


async def test_line_get_shape(env: Env) -> None:
    """line.get maps line ids to display names."""
    status, body = await post_json(env.session, env.url + "voximplant.line.get")
    assert status == 200
    assert body["result"] == {"rest7": "rest7", "reg1332": "Sandbox line 1", "reg1333": "Sandbox line 2"}
    assert set(body["time"]) == TIME_FIELDS


async def test_voices_get_shape(env: Env) -> None:
    """tts.voices.get maps voice ids to descriptions: the list on Bitrix24's page for the method."""
    status, body = await post_json(env.session, env.url + "voximplant.tts.voices.get")
    assert status == 200
    assert body["result"]["usenglishfemale"] == "American English (Female) (Default)"
    assert {"eurgermanfemale", "usinternalmale"} <= body["result"].keys()
    assert "ruinternalfemale" not in body["result"], "the callback page's example voice is not on the list"


async def test_wrong_webhook_is_401(env: Env) -> None:
    """A wrong code or user id answers 401 NO_AUTH_FOUND and places no call."""
    base = env.handle.base_url
    for url in (f"{base}/rest/1/wrongsecret/{CALLBACK}", f"{base}/rest/2/sandboxsecret/{CALLBACK}"):
        status, body = await post_json(env.session, url, CALLBACK_PARAMS)
        assert (status, body) == (
            401,
            {"error": "NO_AUTH_FOUND", "error_description": "Wrong authorization data"},
        )
    assert env.sandbox.calls(executed_only=True) == []
    assert [call.portal for call in env.sandbox.calls()] == [None, None]


async def test_oauth_form_without_a_known_token_is_401(env: Env) -> None:
    """The OAuth URL form `/rest/METHOD?auth=...` is refused: the sandbox knows no tokens."""
    status, body = await post_json(env.session, f"{env.handle.base_url}/rest/{CALLBACK}", {"auth": "t"})
    assert (status, body["error"]) == (401, "NO_AUTH_FOUND")


async def test_unknown_line_is_400(env: Env) -> None:
    """An unknown FROM_LINE answers 400 ERROR_CORE naming the line."""
    params = {**CALLBACK_PARAMS, "FROM_LINE": "reg9999"}
    status, body = await post_json(env.session, env.url + CALLBACK, params)
    assert (status, body) == (
        400,
        {"error": "ERROR_CORE", "error_description": "Could not find line reg9999"},
    )


async def test_unusable_number_is_400(env: Env) -> None:
    """A TO_NUMBER without digits answers 400 ERROR_CORE."""
    params = {**CALLBACK_PARAMS, "TO_NUMBER": "n/a"}
    status, body = await post_json(env.session, env.url + CALLBACK, params)
    assert (status, body) == (
        400,
        {"error": "ERROR_CORE", "error_description": "Phone number is not correct"},
    )


async def test_unknown_method_is_404(env: Env) -> None:
    """An unknown method answers 404 ERROR_METHOD_NOT_FOUND."""
    status, body = await post_json(env.session, env.url + "crm.lead.add")
    assert (status, body) == (
        404,
        {"error": "ERROR_METHOD_NOT_FOUND", "error_description": "Method not found!"},
    )


async def test_json_suffix_and_any_case_are_accepted(env: Env) -> None:
    """`.json` and upper-case method names reach the same method."""
    for method in (CALLBACK + ".json", CALLBACK.upper()):
        status, _ = await post_json(env.session, env.url + method, CALLBACK_PARAMS)
        assert status == 200
    assert len(env.sandbox.calls(executed_only=True)) == 2


async def test_xml_suffix_is_400(env: Env) -> None:
    """`.xml` answers 400 with an error saying only JSON is supported."""
    status, body = await post_json(env.session, env.url + CALLBACK + ".xml", CALLBACK_PARAMS)
    assert status == 400
    assert "JSON" in body["error_description"]


async def test_form_encoded_multipart_and_query_parameters(env: Env) -> None:
    """urlencoded POST, multipart POST and GET query strings all carry parameters."""
    async with env.session.post(env.url + CALLBACK, data=CALLBACK_PARAMS) as response:
        assert response.status == 200
    multipart = aiohttp.FormData(CALLBACK_PARAMS, default_to_multipart=True)
    async with env.session.post(env.url + CALLBACK, data=multipart) as response:
        assert response.status == 200
    async with env.session.get(env.url + CALLBACK, params=CALLBACK_PARAMS) as response:
        assert response.status == 200
    calls = env.sandbox.calls(executed_only=True)
    assert [call.params for call in calls] == [CALLBACK_PARAMS] * 3


async def test_body_params_override_query_params(env: Env) -> None:
    """When a parameter is in both the query and the body, the body wins."""
    async with env.session.post(
        env.url + CALLBACK, params={"FROM_LINE": "nope"}, json=CALLBACK_PARAMS
    ) as response:
        assert response.status == 200


async def test_undecodable_json_body_is_ignored(env: Env) -> None:
    """A body that is not a JSON object leaves the method without parameters."""
    headers = {"Content-Type": "application/json"}
    async with env.session.post(env.url + CALLBACK, data="{not json", headers=headers) as response:
        assert response.status == 400
        assert (await response.json())["error_description"] == "Could not find line "


async def test_bucket_refuses_after_exactly_burst_requests(env: Env) -> None:
    """With a slow drain, exactly `burst` fast requests pass and the next one gets 503."""
    url = env.handle.webhook_url("tight")
    statuses = [(await post_json(env.session, url + CALLBACK, CALLBACK_PARAMS))[0] for _ in range(6)]
    assert statuses == [200] * 5 + [503]
    _, body = await post_json(env.session, url + "voximplant.line.get")
    assert body == {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}
    assert (await post_json(env.session, env.url + CALLBACK, CALLBACK_PARAMS))[0] == 200
    assert len(env.sandbox.calls(portal="tight", executed_only=True)) == 5


async def test_bucket_drains_with_the_clock(env: Env) -> None:
    """Once the bucket is full, time passing at `rate` lets requests through again."""
    url = env.handle.webhook_url("tight") + "voximplant.line.get"
    for _ in range(5):
        await post_json(env.session, url)
    assert (await post_json(env.session, url))[0] == 503
    env.clock.advance(2 / 0.001)  # two slots: one for the refused request, one for the next
    assert (await post_json(env.session, url))[0] == 200
