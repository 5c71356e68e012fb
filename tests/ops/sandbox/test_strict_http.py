"""The strict portal's switches over HTTP: the control API's PATCH, and a real 302 with its Location."""

from __future__ import annotations

import aiohttp

from ops.sandbox import Sandbox, SandboxPortal, running_sandbox
from tests.support.sandbox import CALLBACK_PARAMS

CALLBACK = "voximplant.callback.start"


async def test_patch_switches_and_a_moved_portal_over_http() -> None:
    """PATCH /_sandbox/portals/NAME moves a portal; the old host answers 302 to the new one, same path;
    the new host places the call; GET /_sandbox/calls records each request's host and path."""
    portal = SandboxPortal(name="default", webhooks={(1, "sandboxsecret")}, rate=100.0, burst=100)
    async with running_sandbox(Sandbox([portal])) as handle, aiohttp.ClientSession() as session:
        port = handle.base_url.rsplit(":", 1)[1]
        new = f"http://localhost:{port}"
        async with session.patch(
            f"{handle.base_url}/_sandbox/portals/default", json={"moved_to": new}
        ) as resp:
            assert resp.status == 200 and (await resp.json())["moved_to"] == new
        async with session.patch(
            f"{handle.base_url}/_sandbox/portals/default", json={"scopes": ["x"]}
        ) as resp:
            assert resp.status == 400 and "unknown scopes" in (await resp.json())["error_description"]
        path = f"/rest/1/sandboxsecret/{CALLBACK}.json"
        async with session.post(handle.base_url + path, json=CALLBACK_PARAMS, allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (302, new + path)
        async with session.post(new + path, json=CALLBACK_PARAMS) as resp:
            assert resp.status == 200 and (await resp.json())["result"]["RESULT"] is True
        async with session.get(f"{handle.base_url}/_sandbox/calls") as resp:
            calls = await resp.json()
    assert [(c["host"], c["path"], c["status"]) for c in calls] == [
        (f"127.0.0.1:{port}", path, 302),
        (f"localhost:{port}", path, 200),
    ]
