"""Token scopes and portal-qualified lookups of the HTTP API, on a real server and the real Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from structlog.testing import capture_logs

from ops.sandbox import SandboxHandle
from producers.http.app import create_app
from schemas.config import ApiToken, Settings, token_fingerprint
from tests.support.helpers import make_settings, read_outcomes, sandbox_portal

Client = TestClient[web.Request, web.Application]

FULL = "full-access-token"
TOKENS = {
    "shop": ApiToken(name="shop", token="shop-token-0123456789", portals=frozenset({"acme"}), access="write"),
    "auditor": ApiToken(name="auditor", token="auditor-token-0123456789", portals=None, access="read"),
    "beta-reader": ApiToken(
        name="beta-reader", token="beta-token-0123456789", portals=frozenset({"beta"}), access="read"
    ),
    "pair": ApiToken(
        name="pair", token="pair-token-0123456789", portals=frozenset({"acme", "beta"}), access="write"
    ),
}
LATER = (datetime.now(UTC) + timedelta(days=1)).isoformat()
JOB: dict[str, Any] = {
    "from_line": "reg1332",
    "to_number": "+79111234567",
    "text_to_pronounce": "Hi",
    "not_before": LATER,
}


def auth(name: str) -> dict[str, str]:
    """The Authorization header of a named token, or of the full-access one."""
    token = TOKENS[name].token if name in TOKENS else FULL
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def settings(redis_url: str, prefix: str, portal: SandboxHandle) -> Settings:
    """Three portals, acme, beta and gamma; a plain full-access token and four named, scoped ones."""
    url = portal.webhook_url("default")
    portals = {name: sandbox_portal(url, name=name) for name in ("acme", "beta", "gamma")}
    return make_settings(redis_url, prefix, portals, api_tokens=(FULL,), named_tokens=tuple(TOKENS.values()))


@pytest.fixture
async def client(redis: Redis, settings: Settings) -> AsyncIterator[Client]:
    """The API on a real loopback server."""
    async with TestClient(TestServer(create_app(redis=redis, settings=settings))) as client:
        yield client


async def call(client: Client, method: str, path: str, who: str, **kwargs: Any) -> tuple[int, Any]:
    """One request as token ``who``: (status, JSON body)."""
    async with client.request(method, path, headers=auth(who), **kwargs) as resp:
        return resp.status, await resp.json()


async def test_a_token_submits_only_to_its_portals(client: Client, redis: Redis, prefix: str) -> None:
    """A write token for acme gets 403 for beta or an unknown portal (nothing recorded), 202 for acme,
    and may leave the portal out because it has only one."""
    for portal in ("beta", "delta"):
        status, body = await call(client, "POST", "/v1/callbacks", "shop", json={**JOB, "portal": portal})
        assert (status, body["error"]["code"]) == (403, "PORTAL_NOT_ALLOWED"), body
    assert await read_outcomes(redis, prefix) == []
    status, named = await call(client, "POST", "/v1/callbacks", "shop", json={**JOB, "portal": "acme"})
    assert status == 202
    status, implied = await call(
        client, "POST", "/v1/callbacks", "shop", json={**JOB, "to_number": "+79110000000"}
    )
    assert status == 202
    for job_id in (named["job_id"], implied["job_id"]):
        assert (await call(client, "GET", f"/v1/callbacks/{job_id}", "shop"))[1]["portal"] == "acme"
    status, body = await call(client, "POST", "/v1/callbacks", "full", json=JOB)
    assert status == 422 and "several portals" in body["errors"][0]["message"]


async def test_a_scoped_tokens_errors_name_only_its_portals(client: Client) -> None:
    """A token for acme and beta that leaves the portal out is told to name one of those two, never gamma."""
    status, body = await call(client, "POST", "/v1/callbacks", "pair", json=JOB)
    assert status == 422
    (error,) = body["errors"]
    assert "(acme, beta)" in error["message"] and "gamma" not in str(body)


async def test_a_read_token_reads_but_never_writes(client: Client, redis: Redis, prefix: str) -> None:
    """A read token gets 200 for GET, and 403 for POST and DELETE (even of an unknown id); nothing changes."""
    _, job = await call(client, "POST", "/v1/callbacks", "full", json={**JOB, "portal": "beta"})
    assert (await call(client, "GET", f"/v1/callbacks/{job['job_id']}", "auditor"))[0] == 200
    status, body = await call(client, "POST", "/v1/callbacks", "auditor", json={**JOB, "portal": "beta"})
    assert (status, body["error"]["code"]) == (403, "FORBIDDEN")
    for ident in (job["job_id"], "unknown"):
        status, body = await call(client, "DELETE", f"/v1/callbacks/{ident}", "auditor")
        assert (status, body["error"]["code"]) == (403, "FORBIDDEN")
    status, view = await call(client, "GET", f"/v1/callbacks/{job['job_id']}", "full")
    assert view["status"] == "scheduled"
    assert await read_outcomes(redis, prefix) == []


async def test_a_job_on_a_portal_the_token_cannot_see_is_404(client: Client) -> None:
    """By job id or by key, GET and DELETE of another portal's job answer 404, as for no job; it stays scheduled."""
    _, job = await call(
        client, "POST", "/v1/callbacks", "full", json={**JOB, "portal": "beta", "idempotency_key": "lead-9"}
    )
    for ident in (job["job_id"], "lead-9", f"{job['job_id']}?portal=beta", "lead-9?portal=beta"):
        for method in ("GET", "DELETE"):
            status, body = await call(client, method, f"/v1/callbacks/{ident}", "shop")
            assert (status, body["error"]["code"]) == (404, "NOT_FOUND"), (method, ident)
    assert (await call(client, "GET", "/v1/callbacks/lead-9", "beta-reader"))[1]["job_id"] == job["job_id"]
    assert (await call(client, "GET", f"/v1/callbacks/{job['job_id']}", "full"))[1]["status"] == "scheduled"


async def test_a_key_on_two_portals_is_ambiguous_until_a_portal_is_named(client: Client) -> None:
    """The same key on acme and beta: GET/DELETE by key is 409 AMBIGUOUS_KEY listing both and cancels
    nothing; with ?portal= each is its own job; a token that sees one portal finds its own."""
    ids = {}
    for portal in ("acme", "beta"):
        _, job = await call(
            client,
            "POST",
            "/v1/callbacks",
            "full",
            json={**JOB, "portal": portal, "idempotency_key": "lead-X"},
        )
        ids[portal] = job["job_id"]
    for method in ("GET", "DELETE"):
        status, body = await call(client, method, "/v1/callbacks/lead-X", "full")
        assert (status, body["error"]["code"]) == (409, "AMBIGUOUS_KEY")
        assert body["portals"] == ["acme", "beta"]
        assert "?portal=" in body["error"]["description"]
    assert (await call(client, "GET", "/v1/callbacks/lead-X", "auditor"))[0] == 409
    assert (await call(client, "GET", "/v1/callbacks/lead-X?portal=acme", "full"))[1]["job_id"] == ids["acme"]
    assert (await call(client, "GET", "/v1/callbacks/lead-X", "shop"))[1]["job_id"] == ids["acme"]
    assert (await call(client, "GET", "/v1/callbacks/lead-X", "beta-reader"))[1]["job_id"] == ids["beta"]
    status, cancelled = await call(client, "DELETE", "/v1/callbacks/lead-X?portal=beta", "full")
    assert (status, cancelled["job_id"], cancelled["status"]) == (200, ids["beta"], "cancelled")
    assert (await call(client, "GET", f"/v1/callbacks/{ids['acme']}", "full"))[1]["status"] == "scheduled"
    status, cancelled = await call(client, "DELETE", "/v1/callbacks/lead-X", "shop")
    assert (status, cancelled["job_id"], cancelled["status"]) == (200, ids["acme"], "cancelled")


async def test_an_unknown_portal_parameter_is_404(client: Client) -> None:
    """?portal= naming no configured portal finds nothing, even for a job id that exists."""
    _, job = await call(client, "POST", "/v1/callbacks", "full", json={**JOB, "portal": "acme"})
    for query in ("?portal=delta", "?portal=", "?portal=beta"):
        assert (await call(client, "GET", f"/v1/callbacks/{job['job_id']}{query}", "full"))[0] == 404, query


async def test_the_access_log_names_the_token_never_the_token(client: Client) -> None:
    """Each http.request line carries the token's name (a fingerprint for a plain token), never a token."""
    with capture_logs() as logs:
        await call(client, "POST", "/v1/callbacks", "shop", json={**JOB, "portal": "acme"})
        await call(client, "GET", "/v1/callbacks/nope", "full")
        async with client.get("/v1/callbacks/nope", headers={"Authorization": "Bearer wrong"}):
            pass
    lines = [entry for entry in logs if entry["event"] == "http.request"]
    assert [(line["status"], line["caller"]) for line in lines] == [
        (202, "shop"),
        (404, token_fingerprint(FULL)),
        (401, None),
    ]
    text = repr(logs)
    assert all(token.token not in text for token in TOKENS.values()) and FULL not in text
