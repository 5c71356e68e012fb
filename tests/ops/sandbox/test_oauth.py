"""The sandbox portal's OAuth 2.0 side: the token endpoint, access tokens on REST calls, control routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from ops.sandbox import Sandbox, SandboxPortal, running_sandbox
from tests.support.helpers import FakeClock
from tests.support.sandbox import CALLBACK, CALLBACK_PARAMS, SandboxEnv, post_json

CLIENT_ID = "local.app.1"
SECRET = "appsecret"


@dataclass
class Env(SandboxEnv):
    wall: FakeClock

    async def token(self, refresh_token: str, **overrides: str) -> tuple[int, dict[str, Any]]:
        params = {
            "grant_type": "refresh_token",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
            "refresh_token": refresh_token,
            **overrides,
        }
        async with self.session.get(f"{self.handle.base_url}/oauth/token/", params=params) as response:
            return response.status, await response.json()

    async def callback(self, access_token: str, method: str = CALLBACK) -> tuple[int, Any]:
        url = f"{self.handle.base_url}/rest/{method}.json"
        return await post_json(self.session, url, {**CALLBACK_PARAMS, "auth": access_token})

    async def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        url = f"{self.handle.base_url}/_sandbox/{path}"
        async with self.session.request(method, url, json=body) as response:
            return response.status, await response.json()


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    wall = FakeClock(1_750_000_000.0)
    sandbox = Sandbox(
        [
            SandboxPortal(name="default"),
            SandboxPortal(name="acme", webhooks={(9, "acmesecret")}, oauth_clients={CLIENT_ID: SECRET}),
        ],
        wall_clock=wall,
    )
    async with running_sandbox(sandbox) as handle, aiohttp.ClientSession() as session:
        yield Env(sandbox, handle, session, wall)


async def test_refresh_answers_a_new_pair_and_rotates_the_refresh_token(env: Env) -> None:
    """A refresh answers Bitrix24's token shape and a new refresh token; the old one is then invalid_grant."""
    first = env.sandbox.issue_refresh_token("acme", CLIENT_ID)
    status, body = await env.token(first)
    assert status == 200
    assert set(body) == {
        "access_token",
        "expires",
        "expires_in",
        "scope",
        "domain",
        "server_endpoint",
        "status",
        "client_endpoint",
        "member_id",
        "user_id",
        "refresh_token",
    }
    assert body["refresh_token"] != first
    assert (body["expires_in"], body["expires"]) == (3600, 1_750_003_600)
    assert body["client_endpoint"] == f"{env.handle.base_url}/rest/"
    assert len(body["member_id"]) == 32

    assert await env.token(first) == (
        400,
        {"error": "invalid_grant", "error_description": "Invalid refresh token"},
    )
    status, again = await env.token(body["refresh_token"])
    assert status == 200
    assert again["member_id"] == body["member_id"]
    assert [(r.portal, r.status, r.error) for r in env.sandbox.token_requests("acme")] == [
        ("acme", 200, None),
        ("acme", 400, "invalid_grant"),
        ("acme", 200, None),
    ]


@pytest.mark.parametrize(
    ("overrides", "status", "error"),
    [
        ({"client_secret": "wrong"}, 401, "invalid_client"),
        ({"client_id": "someone.else"}, 401, "invalid_client"),
        ({"grant_type": "authorization_code"}, 400, "invalid_request"),
        ({"client_secret": ""}, 400, "invalid_request"),
    ],
)
async def test_a_bad_client_or_request_is_refused_and_spends_no_token(
    env: Env, overrides: dict[str, str], status: int, error: str
) -> None:
    """A wrong client or a malformed request is refused, and the refresh token stays usable."""
    refresh = env.sandbox.issue_refresh_token("acme", CLIENT_ID)
    answered, body = await env.token(refresh, **overrides)
    assert (answered, body["error"]) == (status, error)
    assert (await env.token(refresh))[0] == 200


async def test_unknown_refresh_token_is_invalid_grant(env: Env) -> None:
    """A refresh token the sandbox never issued is invalid_grant (400), recorded under the client's portal."""
    status, body = await env.token("0" * 48)
    assert (status, body["error"]) == (400, "invalid_grant")
    assert [(r.portal, r.error) for r in env.sandbox.token_requests()] == [("acme", "invalid_grant")]


async def test_rest_call_with_a_valid_token_runs_like_a_webhook(env: Env) -> None:
    """`/rest/METHOD` with a valid `auth` runs the method for the token's portal and records it."""
    _, tokens = await env.token(env.sandbox.issue_refresh_token("acme", CLIENT_ID))
    status, body = await env.callback(tokens["access_token"])
    assert status == 200
    assert body["result"]["RESULT"] is True
    [call] = env.sandbox.calls("acme")
    assert (call.executed, call.status, call.params["auth"]) == (True, 200, tokens["access_token"])
    query_form = f"{env.handle.base_url}/rest/voximplant.line.get?auth={tokens['access_token']}"
    async with env.session.get(query_form) as response:
        assert response.status == 200


async def test_expired_token_is_refused_before_execution(env: Env) -> None:
    """Once the token's lifetime has passed, a call answers 401 expired_token and places nothing."""
    _, tokens = await env.token(env.sandbox.issue_refresh_token("acme", CLIENT_ID))
    env.wall.advance(3600)
    status, body = await env.callback(tokens["access_token"])
    assert (status, body) == (
        401,
        {"error": "expired_token", "error_description": "The access token provided has expired."},
    )
    [call] = env.sandbox.calls("acme")
    assert (call.executed, call.status, call.call_id) == (False, 401, None)


async def test_unknown_token_is_invalid_token(env: Env) -> None:
    """A token nobody issued answers 401 invalid_token and is recorded without a portal."""
    status, body = await env.callback("f" * 48)
    assert (status, body["error"]) == (401, "invalid_token")
    assert [(c.portal, c.executed) for c in env.sandbox.calls()] == [(None, False)]


async def test_expire_access_tokens_expires_every_token_of_the_portal_only(env: Env) -> None:
    """expire_access_tokens ends all current access tokens of one portal; refresh tokens still work."""
    _, one = await env.token(env.sandbox.issue_refresh_token("acme", CLIENT_ID))
    _, two = await env.token(env.sandbox.issue_refresh_token("acme", CLIENT_ID))
    assert env.sandbox.expire_access_tokens("acme") == 2
    assert env.sandbox.expire_access_tokens("acme") == 0
    for tokens in (one, two):
        assert (await env.callback(tokens["access_token"]))[1]["error"] == "expired_token"
    status, fresh = await env.token(one["refresh_token"])
    assert status == 200
    assert (await env.callback(fresh["access_token"]))[0] == 200
    with pytest.raises(KeyError):
        env.sandbox.expire_access_tokens("nowhere")


async def test_control_routes_grant_expire_and_list_requests(env: Env) -> None:
    """The control API issues a first refresh token, expires a portal's tokens and lists token requests."""
    status, grant = await env.control("POST", "oauth/grant", {"portal": "acme", "client_id": CLIENT_ID})
    assert status == 200
    _, tokens = await env.token(grant["refresh_token"])
    assert await env.control("POST", "oauth/expire", {"portal": "acme"}) == (200, {"expired": 1})
    assert (await env.callback(tokens["access_token"]))[0] == 401
    status, requests = await env.control("GET", "oauth/requests?portal=acme")
    assert status == 200
    assert [(r["client_id"], r["status"], r["error"]) for r in requests] == [(CLIENT_ID, 200, None)]
    assert (await env.control("POST", "oauth/grant", {"portal": "acme", "client_id": "nope"}))[0] == 400
    assert (await env.control("POST", "oauth/grant", {"portal": "nowhere", "client_id": CLIENT_ID}))[0] == 400
    assert (await env.control("POST", "oauth/expire", {"portal": "nowhere"}))[0] == 400


async def test_portal_spec_carries_oauth_clients_and_replacing_it_revokes_tokens(env: Env) -> None:
    """POST /_sandbox/portals accepts oauth_clients; a replaced portal's old tokens stop working."""
    spec = {"name": "acme", "webhooks": [[9, "acmesecret"]], "oauth_clients": {CLIENT_ID: SECRET}}
    _, tokens = await env.token(env.sandbox.issue_refresh_token("acme", CLIENT_ID))
    status, portal = await env.control("POST", "portals", {**spec, "token_lifetime_s": 60})
    assert status == 200
    assert (portal["oauth_clients"], portal["token_lifetime_s"]) == ({CLIENT_ID: SECRET}, 60.0)
    assert (await env.callback(tokens["access_token"]))[1]["error"] == "invalid_token"
    assert (await env.token(tokens["refresh_token"]))[1]["error"] == "invalid_grant"
    _, fresh = await env.token(env.sandbox.issue_refresh_token("acme", CLIENT_ID))
    assert fresh["expires_in"] == 60


async def test_webhooks_of_an_oauth_portal_still_work(env: Env) -> None:
    """An OAuth-enabled portal keeps answering its webhook URL as before."""
    url = env.handle.webhook_url("acme") + CALLBACK
    assert (await post_json(env.session, url, CALLBACK_PARAMS))[0] == 200
