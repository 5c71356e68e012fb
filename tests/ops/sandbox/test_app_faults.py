"""Injected faults as seen by a real aiohttp client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from ops.sandbox import Fault, Sandbox, SandboxPortal, running_sandbox
from tests.support.sandbox import CALLBACK, CALLBACK_PARAMS, SandboxEnv, post_json


@dataclass
class Env(SandboxEnv):
    def url(self, portal: str = "default", method: str = CALLBACK) -> str:
        return self.handle.webhook_url(portal) + method


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    sandbox = Sandbox(
        [
            SandboxPortal(name="default", webhooks={(1, "sandboxsecret")}),
            SandboxPortal(name="acme", webhooks={(5, "acmesecret")}),
        ]
    )
    async with running_sandbox(sandbox) as handle, aiohttp.ClientSession() as session:
        yield Env(sandbox, handle, session)


@pytest.mark.parametrize(
    ("status", "code", "executed"),
    [
        (503, "QUERY_LIMIT_EXCEEDED", False),
        (503, "OVERLOAD_LIMIT", False),
        (429, "OPERATION_TIME_LIMIT", False),
        (401, "expired_token", False),
        (403, "ACCESS_DENIED", False),
        (400, "ERROR_CORE", False),
        (500, "INTERNAL_SERVER_ERROR", True),
    ],
)
async def test_error_fault(env: Env, status: int, code: str, executed: bool) -> None:
    """An error fault answers its status and Bitrix24 error body and records whether it executed."""
    env.sandbox.add_faults([Fault.error(status, code, "injected")], portal="default")
    answer = await post_json(env.session, env.url(), CALLBACK_PARAMS)
    assert answer == (status, {"error": code, "error_description": "injected"})
    [call] = env.sandbox.calls()
    assert (call.status, call.executed, call.fault) == (status, executed, "error")
    assert (call.call_id is not None) is executed


async def test_raw_fault(env: Env) -> None:
    """A raw fault answers an arbitrary body, like a proxy's 502 HTML page."""
    env.sandbox.add_faults([Fault.raw(502, "<html><h1>502 Bad Gateway</h1></html>", executed=False)])
    async with env.session.post(env.url(), json=CALLBACK_PARAMS) as response:
        assert (response.status, response.content_type) == (502, "text/html")
        assert "Bad Gateway" in await response.text()
    assert env.sandbox.calls()[0].executed is False


async def test_fault_echoes_the_request_through_placeholders(env: Env) -> None:
    """{TO_NUMBER} and {WEBHOOK} in a fault are answered with what the request sent, as a real portal echoes them."""
    echo_error = Fault.error(400, "ERROR_CORE", "Phone number {TO_NUMBER} is not correct (webhook {WEBHOOK})")
    echo_page = Fault.raw(502, "<html>{TO_NUMBER} at /rest/1/{WEBHOOK}/ auth={AUTH}</html>", executed=False)
    env.sandbox.add_faults([echo_error, echo_page])
    answer = await post_json(env.session, env.url(), CALLBACK_PARAMS)
    description = "Phone number +79111234567 is not correct (webhook sandboxsecret)"
    assert answer == (400, {"error": "ERROR_CORE", "error_description": description})
    async with env.session.post(env.url(), json=CALLBACK_PARAMS) as response:
        assert await response.text() == "<html>+79111234567 at /rest/1/sandboxsecret/ auth=</html>"


async def test_delay_fault(env: Env) -> None:
    """A delay fault answers the normal result, only later."""
    env.sandbox.add_faults([Fault.delay(0.2)])
    loop = asyncio.get_running_loop()
    started = loop.time()
    status, body = await post_json(env.session, env.url(), CALLBACK_PARAMS)
    assert (status, body["result"]["RESULT"]) == (200, True)
    assert loop.time() - started >= 0.2
    assert body["time"]["duration"] >= 0.2


async def test_delay_longer_than_client_timeout_still_executes(env: Env) -> None:
    """A client that gives up during a delay leaves an executed call behind (outcome unknown)."""
    env.sandbox.add_faults([Fault.delay(5)])
    with pytest.raises(TimeoutError):
        async with env.session.post(
            env.url(), json=CALLBACK_PARAMS, timeout=aiohttp.ClientTimeout(total=0.2)
        ) as response:
            await response.read()
    assert env.sandbox.calls(executed_only=True)[0].status == 200


async def test_hang_fault_times_the_client_out(env: Env) -> None:
    """A hang executes the call and never answers, so the client times out."""
    env.sandbox.add_faults([Fault.hang()])
    with pytest.raises(TimeoutError):
        async with env.session.post(
            env.url(), json=CALLBACK_PARAMS, timeout=aiohttp.ClientTimeout(total=0.2)
        ) as response:
            await response.read()
    [call] = env.sandbox.calls()
    assert (call.executed, call.status, call.fault) == (True, None, "hang")
    assert (await post_json(env.session, env.url(), CALLBACK_PARAMS))[0] == 200


async def test_hanging_request_does_not_block_shutdown() -> None:
    """Leaving running_sandbox drops a hanging request's connection promptly."""
    sandbox = Sandbox([SandboxPortal(name="default")])
    sandbox.add_faults([Fault.hang()])
    loop = asyncio.get_running_loop()
    async with aiohttp.ClientSession() as session:
        async with running_sandbox(sandbox) as handle:
            request = asyncio.ensure_future(
                post_json(session, handle.webhook_url() + CALLBACK, CALLBACK_PARAMS)
            )
            await sandbox.wait_for_calls(1)
            started = loop.time()
        assert loop.time() - started < 2.0
        with pytest.raises(aiohttp.ClientConnectionError):
            await request


async def test_reset_fault_drops_the_connection(env: Env) -> None:
    """A reset executes the call and drops the TCP connection without an HTTP answer."""
    env.sandbox.add_faults([Fault.reset()])
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await post_json(env.session, env.url(), CALLBACK_PARAMS)
    [call] = env.sandbox.calls()
    assert (call.executed, call.status, call.fault) == (True, None, "reset")
    assert (await post_json(env.session, env.url(), CALLBACK_PARAMS))[0] == 200


async def test_queue_order(env: Env) -> None:
    """Queued faults are used up one per request, in the order given, then requests succeed."""
    env.sandbox.add_faults(
        [Fault.error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")] * 2
        + [Fault.error(500, "INTERNAL_SERVER_ERROR", "Internal error")]
    )
    statuses = [(await post_json(env.session, env.url(), CALLBACK_PARAMS))[0] for _ in range(4)]
    assert statuses == [503, 503, 500, 200]
    assert [call.executed for call in env.sandbox.calls()] == [False, False, True, True]


async def test_per_portal_and_per_method_targeting(env: Env) -> None:
    """A fault for one portal or method leaves other portals and methods alone."""
    env.sandbox.add_faults([Fault.error(403, "ACCESS_DENIED", "Access denied")], portal="acme")
    env.sandbox.add_faults(
        [Fault.error(503, "OVERLOAD_LIMIT", "Overloaded")], portal="default", method="voximplant.line.get"
    )
    assert (await post_json(env.session, env.url("default"), CALLBACK_PARAMS))[0] == 200
    assert (await post_json(env.session, env.url("acme"), CALLBACK_PARAMS))[0] == 403
    assert (await post_json(env.session, env.url("acme", "voximplant.line.get")))[0] == 200
    assert (await post_json(env.session, env.url("default", "voximplant.line.get")))[0] == 503
    assert env.sandbox.faults()["pending"] == []


async def _statuses_with_seed(seed: int) -> list[int]:
    sandbox = Sandbox([SandboxPortal(name="default")])
    kinds = [Fault.error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"), Fault.error(429, "X", "y")]
    sandbox.set_random_faults(0.5, kinds, seed=seed)
    async with running_sandbox(sandbox) as handle, aiohttp.ClientSession() as session:
        url = handle.webhook_url() + CALLBACK
        return [(await post_json(session, url, CALLBACK_PARAMS))[0] for _ in range(30)]


async def test_random_mode_is_reproducible_by_seed() -> None:
    """Chaos mode with the same seed fails the same requests the same way."""
    first, again, other = (
        await _statuses_with_seed(11),
        await _statuses_with_seed(11),
        await _statuses_with_seed(12),
    )
    assert first == again
    assert first != other
    assert {200, 503, 429} <= set(first)
