"""DNS rebinding and cross-site forms: with ``--no-auth`` only requests addressed to a loopback host are
served (API and dashboard, a JSON ``421`` otherwise); the dashboard's POSTs, the login's too, take an
``Origin`` only when its scheme, host and port are allowed; ``--public-url`` names the allowed ones."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from producers.http.app import create_app, public_origins
from schemas.config import ApiToken, ConfigError, PortalConfig, Settings
from tests.support.helpers import make_settings, sandbox_portal

OPERATOR = "operator-token-0123456789"
Client = TestClient[web.Request, web.Application]


def portals() -> dict[str, PortalConfig]:
    return {"default": sandbox_portal("http://127.0.0.1:9/rest/1/x/")}


@contextlib.asynccontextmanager
async def server(
    redis: Redis, settings: Settings, *, no_auth: bool = False, public_urls: Sequence[str] = ()
) -> AsyncIterator[Client]:
    app = create_app(redis=redis, settings=settings, allow_no_auth=no_auth, public_urls=public_urls)
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_no_auth_serves_loopback_hosts_only(redis: Redis, redis_url: str, prefix: str) -> None:
    """A DNS-rebinding page (``evil.test`` resolving to 127.0.0.1) gets 421 on every route, the login
    and the API included; the loopback names and addresses are served."""
    settings = make_settings(redis_url, prefix, portals())
    async with server(redis, settings, no_auth=True) as client:
        port = client.port
        for host in (f"evil.test:{port}", "evil.test", f"127.0.0.1.evil.test:{port}", "localhost.evil"):
            for method, path in (
                ("GET", "/healthz"),
                ("POST", "/dashboard/login"),
                ("POST", "/v1/callbacks"),
            ):
                async with client.request(
                    method, path, headers={"Host": host}, allow_redirects=False
                ) as resp:
                    assert resp.status == 421, (host, path)
                    assert (await resp.json())["error"]["code"] == "MISDIRECTED_REQUEST"
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.2", f"[::1]:{port}"):
            async with client.get("/healthz", headers={"Host": host}) as resp:
                assert resp.status == 200, host
        assert await redis.keys(f"{prefix}:session:*") == []


async def test_login_checks_the_origin_scheme_host_and_port(
    redis: Redis, redis_url: str, prefix: str
) -> None:
    """The login form's POST is refused 403 from another origin (login CSRF), from the same host with
    another scheme or port; from the server's own origin it logs in."""
    settings = make_settings(redis_url, prefix, portals())
    async with server(redis, settings, no_auth=True) as client:
        port = client.port
        assert port is not None
        for origin in (
            f"http://evil.test:{port}",
            f"https://127.0.0.1:{port}",
            f"http://127.0.0.1:{port + 1}",
            "http://127.0.0.1",
            "null",
        ):
            async with client.post(
                "/dashboard/login", headers={"Origin": origin}, allow_redirects=False
            ) as resp:
                assert resp.status == 403, origin
        assert await redis.keys(f"{prefix}:session:*") == []
        own = {"Origin": f"http://127.0.0.1:{port}", "Host": f"127.0.0.1:{port}"}
        async with client.post("/dashboard/login", headers=own, allow_redirects=False) as resp:
            assert resp.status == 303
        assert len(await redis.keys(f"{prefix}:session:*")) == 1


async def test_public_url_names_the_dashboard_s_host_and_origin(
    redis: Redis, redis_url: str, prefix: str
) -> None:
    """With tokens and ``--public-url https://callq.example``: the dashboard answers for that host (and
    loopback), not another (421), the API for any host; a login POST is taken from that origin, not
    from its ``http://`` twin."""
    tokens = (ApiToken(name="ops", token=OPERATOR, access="write"),)
    settings = make_settings(redis_url, prefix, portals(), named_tokens=tokens)
    async with server(redis, settings, public_urls=["https://callq.example/"]) as client:
        async with client.get("/dashboard/login", headers={"Host": "other.example"}) as resp:
            assert resp.status == 421
        async with client.get("/healthz", headers={"Host": "other.example"}) as resp:
            assert resp.status == 200
        public = {"Host": "callq.example"}
        async with client.post(
            "/dashboard/login",
            headers={**public, "Origin": "http://callq.example"},
            data={"token": OPERATOR},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 403
        async with client.post(
            "/dashboard/login",
            headers={**public, "Origin": "https://callq.example"},
            data={"token": OPERATOR},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 303


@pytest.mark.parametrize("url", ["callq.example", "ftp://callq.example", "https://callq.example:99999"])
def test_a_public_url_must_be_an_origin(url: str) -> None:
    """``--public-url`` is ``http(s)://host[:port]``; anything else is a configuration error."""
    with pytest.raises(ConfigError, match="public-url"):
        public_origins([url])
