"""The `/_sandbox/...` control API over HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from ops.sandbox import Sandbox, SandboxPortal, running_sandbox
from tests.support.sandbox import CALLBACK, CALLBACK_PARAMS, SandboxEnv, post_json


@dataclass
class Env(SandboxEnv):
    def control(self, path: str) -> str:
        return f"{self.handle.base_url}/_sandbox/{path}"

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.control(path), json=body) as response:
            return response.status, await response.json()

    async def callback(self, portal: str = "default") -> int:
        return (await post_json(self.session, self.handle.webhook_url(portal) + CALLBACK, CALLBACK_PARAMS))[0]


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    sandbox = Sandbox(
        [SandboxPortal(name="default"), SandboxPortal(name="acme", webhooks={(9, "acmesecret")}, burst=2)]
    )
    async with running_sandbox(sandbox) as handle, aiohttp.ClientSession() as session:
        yield Env(sandbox, handle, session)


async def test_queue_faults_inspect_and_clear(env: Env) -> None:
    """POSTed faults are listed, applied in order to their portal, and DELETE drops the rest."""
    specs = [
        {"kind": "error", "status": 503, "code": "QUERY_LIMIT_EXCEEDED", "description": "x", "times": 2},
        {"kind": "raw", "status": 502, "body": "<html/>", "portal": "acme"},
        {"kind": "hang"},
    ]
    status, plan = await env.request("POST", "faults", specs)
    assert status == 200
    assert [(f["kind"], f["portal"]) for f in plan["pending"]] == [
        ("error", None),
        ("error", None),
        ("raw", "acme"),
        ("hang", None),
    ]
    assert plan["pending"][2]["executed"] is True
    assert [await env.callback("acme"), await env.callback("default"), await env.callback("acme")] == [
        503,
        503,
        502,
    ]
    assert await env.request("DELETE", "faults") == (200, {"cleared": 1})
    assert await env.request("GET", "faults") == (200, {"pending": [], "random": None})
    assert await env.callback() == 200


async def test_faults_wrapped_with_shared_portal_and_method(env: Env) -> None:
    """`{"faults": [...], "portal", "method"}` applies one portal and method to every spec."""
    body = {"faults": [{"kind": "reset"}], "portal": "acme", "method": "voximplant.line.get"}
    _, plan = await env.request("POST", "faults", body)
    assert plan["pending"] == [
        {"kind": "reset", "executed": True, "portal": "acme", "method": "voximplant.line.get"}
    ]


async def test_random_mode_over_http(env: Env) -> None:
    """`{"random": {...}}` switches chaos mode on; ratio 1 fails every matching request."""
    spec = {
        "failure_ratio": 1.0,
        "seed": 5,
        "kinds": [{"kind": "error", "status": 429, "code": "X", "description": "y"}],
    }
    status, plan = await env.request("POST", "faults", {"random": spec})
    assert (status, plan["random"]["seed"]) == (200, 5)
    assert [await env.callback(), await env.callback("acme")] == [429, 429]


@pytest.mark.parametrize(
    "body",
    [
        [{"kind": "explode"}],
        [{"kind": "error", "status": 503}],
        [{"kind": "hang"}, {"kind": "reset", "portal": "nope"}],
        [{"kind": "hang"}, {"kind": "reset", "method": "crm.lead.add"}],
        {"random": {"failure_ratio": 2, "kinds": [{"kind": "hang"}]}},
        "hang",
        [["hang"]],
    ],
)
async def test_bad_fault_bodies_are_400_and_queue_nothing(env: Env, body: Any) -> None:
    """A malformed fault body answers 400 and leaves the plan untouched."""
    status, answer = await env.request("POST", "faults", body)
    assert (status, answer["error"]) == (400, "INVALID_CONTROL_REQUEST")
    assert env.sandbox.faults() == {"pending": [], "random": None}


async def test_calls_filters(env: Env) -> None:
    """GET /_sandbox/calls filters by portal, executed_only and method."""
    await post_json(env.session, env.handle.webhook_url() + "voximplant.line.get")
    await env.callback()
    await post_json(env.session, env.handle.webhook_url() + CALLBACK, {"FROM_LINE": "nope"})
    await env.callback("acme")
    _, calls = await env.request("GET", "calls")
    assert [(c["portal"], c["status"]) for c in calls] == [("default", 200), ("default", 400), ("acme", 200)]
    _, executed = await env.request("GET", "calls?portal=default&executed_only=true")
    assert [c["params"] for c in executed] == [CALLBACK_PARAMS]
    assert executed[0]["call_id"].startswith("callback.")
    _, everything = await env.request("GET", "calls?method=all")
    assert len(everything) == 4


async def test_reset_clears_calls_faults_and_buckets(env: Env) -> None:
    """POST /_sandbox/reset forgets calls and faults and empties the buckets."""
    assert [await env.callback("acme") for _ in range(3)] == [200, 200, 503]
    await env.request("POST", "faults", [{"kind": "hang"}])
    assert await env.request("POST", "reset") == (200, {"ok": True})
    assert await env.request("GET", "calls") == (200, [])
    assert await env.request("GET", "faults") == (200, {"pending": [], "random": None})
    assert await env.callback("acme") == 200


async def test_add_portal_at_run_time(env: Env) -> None:
    """POST /_sandbox/portals adds a portal whose webhook URL works at once."""
    spec = {"name": "beta", "webhooks": [[4, "betasecret"]], "lines": {"sip1": "Office"}, "burst": 1}
    status, portal = await env.request("POST", "portals", spec)
    assert status == 200
    assert portal["webhook_url"] == f"{env.handle.base_url}/rest/4/betasecret/"
    line_get = portal["webhook_url"] + "voximplant.line.get"
    status, body = await post_json(env.session, line_get)
    assert (status, body["result"]) == (200, {"sip1": "Office"})
    assert (await post_json(env.session, line_get))[0] == 503
    _, portals = await env.request("GET", "portals")
    assert [p["name"] for p in portals] == ["default", "acme", "beta"]


async def test_bad_portal_body_is_400(env: Env) -> None:
    """A portal spec without a name, or reusing another portal's webhook, answers 400."""
    assert (await env.request("POST", "portals", {"webhooks": [[1, "x"]]}))[0] == 400
    assert (await env.request("POST", "portals", {"name": "copy", "webhooks": [[9, "acmesecret"]]}))[0] == 400
    assert (await env.request("POST", "portals", [1]))[0] == 400
