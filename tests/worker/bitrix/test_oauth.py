"""OAuth credentials: pure policies, then single-flight refresh against the sandbox and a real Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import aiohttp
import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from ops.sandbox import Sandbox, SandboxPortal, TokenRequest, running_sandbox
from schemas.config import OAuthConfig, PortalConfig
from schemas.store.keys import Keys
from tests.support.sandbox import CALLBACK, CALLBACK_PARAMS, SandboxEnv
from worker.bitrix.client import call_method
from worker.bitrix.errors import BitrixApiError
from worker.bitrix.oauth import (
    AuthRefused,
    AuthUnavailable,
    Credentials,
    OAuthKeys,
    PortalAuth,
    TokenSet,
    auth_params,
    classify_token_error,
    needs_refresh,
    parse_token_response,
    send_with_refresh,
)

CLIENT_ID = "local.app.1"
SECRET = "appsecret-xyz"
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


# --- pure policies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now_s", "margin_s", "due"),
    [
        (0.0, 60.0, False),
        (3539.0, 60.0, False),
        (3540.0, 60.0, True),
        (4000.0, 60.0, True),
        (3599.0, 0.0, False),
        (3600.0, 0.0, True),
        (9999.0, None, False),  # only on expired_token
    ],
)
def test_needs_refresh(now_s: float, margin_s: float | None, due: bool) -> None:
    """A token is refreshed once it is within the margin of its expiry, never when the margin is None."""
    assert needs_refresh(now_s=now_s, expires_at_s=3600.0, lifetime_s=3600.0, margin_s=margin_s) is due


def test_margin_is_at_most_a_quarter_of_the_lifetime() -> None:
    """A short-lived token is not refreshed the moment it arrives, whatever the margin."""
    assert not needs_refresh(now_s=0.0, expires_at_s=10.0, lifetime_s=10.0, margin_s=60.0)
    assert needs_refresh(now_s=7.5, expires_at_s=10.0, lifetime_s=10.0, margin_s=60.0)


@pytest.mark.parametrize(
    ("status", "code", "verdict"),
    [
        (400, "invalid_grant", "refused"),
        (401, "invalid_client", "refused"),
        (200, "INVALID_GRANT", "refused"),
        (402, "PAYMENT_REQUIRED", "refused"),
        (400, "something_new", "refused"),
        (503, "QUERY_LIMIT_EXCEEDED", "unavailable"),
        (500, "something_new", "unavailable"),
        (429, "slow_down", "unavailable"),
        (503, "temporarily_unavailable", "unavailable"),
    ],
)
def test_classify_token_error(status: int, code: str, verdict: str) -> None:
    """OAuth error codes are refusals whatever the status; rate limits and 5xx are transient."""
    assert classify_token_error(status, code) == verdict


def test_parse_token_response_success() -> None:
    """A token answer becomes a set expiring `expires_in` after now, with the client endpoint."""
    text = (
        '{"access_token": "A1", "refresh_token": "R1", "expires": 1, "expires_in": 3600,'
        ' "client_endpoint": "https://acme.bitrix24.ru/rest/"}'
    )
    tokens = parse_token_response("acme", 200, text, now_s=1000.0, default_endpoint="x", seed="s")
    assert tokens == TokenSet("A1", "R1", 4600.0, 3600.0, "https://acme.bitrix24.ru/rest/", "s")
    assert TokenSet.from_hash(tokens.to_hash()) == tokens
    assert "A1" not in repr(tokens) and "R1" not in repr(tokens)


def test_parse_token_response_falls_back_to_expires_and_the_domain() -> None:
    """Without expires_in the absolute `expires` counts; without client_endpoint the portal domain."""
    text = '{"access_token": "A1", "refresh_token": "R1", "expires": 1600}'
    tokens = parse_token_response(
        "acme", 200, text, now_s=1000.0, default_endpoint="https://acme.bitrix24.ru/rest/", seed="s"
    )
    assert (tokens.lifetime_s, tokens.client_endpoint) == (600.0, "https://acme.bitrix24.ru/rest/")


@pytest.mark.parametrize(
    ("status", "text", "error"),
    [
        (400, '{"error": "invalid_grant", "error_description": "Invalid refresh token"}', AuthRefused),
        (401, '{"error": "invalid_client"}', AuthRefused),
        (503, '{"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"}', AuthUnavailable),
        (502, "<html>bad gateway</html>", AuthUnavailable),
        (200, '{"access_token": "A1"}', AuthUnavailable),
    ],
)
def test_parse_token_response_errors(status: int, text: str, error: type[Exception]) -> None:
    """Refusals raise AuthRefused; transient or tokenless answers raise AuthUnavailable."""
    with pytest.raises(error):
        parse_token_response("acme", status, text, now_s=0.0, default_endpoint="x", seed="s")


@pytest.mark.parametrize(
    ("status", "text"),
    [
        (400, '{"error": "invalid_grant", "error_description": "refresh token rt-0ld-t0ken-42 is revoked"}'),
        (503, '{"error": "rt-0ld-t0ken-42", "error_description": "cs-s3cret-77"}'),
        (502, "<html>bad refresh token rt-0ld-t0ken-42 for client cs-s3cret-77</html>"),
    ],
)
def test_parse_token_response_errors_do_not_echo_what_was_sent(status: int, text: str) -> None:
    """A refresh token or client secret the endpoint echoes in free text is masked in the error."""
    with pytest.raises((AuthRefused, AuthUnavailable)) as raised:
        parse_token_response(
            "acme",
            status,
            text,
            now_s=0.0,
            default_endpoint="x",
            seed="s",
            secrets=("rt-0ld-t0ken-42", "cs-s3cret-77"),
        )
    shown = f"{raised.value} {vars(raised.value)}"
    assert "rt-0ld-t0ken-42" not in shown and "cs-s3cret-77" not in shown


def test_auth_params_and_credentials_repr() -> None:
    """OAuth credentials add `auth`; webhooks add nothing; neither repr shows a secret."""
    assert auth_params(Credentials("https://a/rest/", "tok")) == {"auth": "tok"}
    assert auth_params(Credentials("https://a/rest/1/code/", None)) == {}
    assert "tok" not in repr(Credentials("https://a/rest/", "tok"))
    assert "code" not in repr(Credentials("https://a/rest/1/code/", None))


def test_key_names() -> None:
    """The token hash and the lock live under the deployment prefix."""
    keys = OAuthKeys.of(Keys("cq"))
    assert (keys.tokens("acme"), keys.lock("acme"), keys.refused("acme")) == (
        "cq:oauth:acme",
        "cq:oauth-lock:acme",
        "cq:oauth-refused:acme",
    )


async def test_webhook_portal_needs_no_io() -> None:
    """A webhook portal's credentials are its URL, without touching Redis (here: nothing listens)."""
    portal = PortalConfig(
        name="hook", webhook_url="https://acme.bitrix24.ru/rest/1/code/", timezone=ZoneInfo("UTC")
    )
    unreachable = Redis.from_url("redis://127.0.0.1:1/0")
    async with aiohttp.ClientSession() as session:
        auth = PortalAuth(unreachable, prefix="unused", session=session)
        assert await auth.credentials(portal) == Credentials("https://acme.bitrix24.ru/rest/1/code/", None)
        with pytest.raises(ValueError, match="webhook"):
            await auth.refresh(portal, stale_access_token=None)
    await unreachable.aclose()


# --- against the sandbox and Redis ---------------------------------------------------------------


class Clock:
    """A wall clock that moves only when told."""

    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Env(SandboxEnv):
    redis: Redis
    redis_url: str
    prefix: str
    clock: Clock
    portal: PortalConfig

    def auth(self, redis: Redis | None = None, **options: Any) -> PortalAuth:
        return PortalAuth(
            redis or self.redis, prefix=self.prefix, session=self.session, clock=self.clock, **options
        )

    def with_oauth(self, **changes: str) -> PortalConfig:
        assert self.portal.oauth is not None
        return replace(self.portal, oauth=replace(self.portal.oauth, **changes))

    def token_requests(self) -> list[TokenRequest]:
        return self.sandbox.token_requests("acme")

    async def callback(self, creds: Credentials) -> int:
        params = {**CALLBACK_PARAMS, **auth_params(creds)}
        status, _ = await call_method(self.session, creds.base_url, CALLBACK, params)
        return status


@pytest.fixture
async def env(redis: Redis, redis_url: str, prefix: str) -> AsyncIterator[Env]:
    sandbox = Sandbox(
        [SandboxPortal(name="acme", oauth_clients={CLIENT_ID: SECRET}, rate=1000.0, burst=1000)]
    )
    async with running_sandbox(sandbox) as handle, aiohttp.ClientSession() as session:
        oauth = OAuthConfig(
            client_id=CLIENT_ID,
            client_secret=SECRET,
            refresh_token=sandbox.issue_refresh_token("acme", CLIENT_ID),
            domain="127.0.0.1",
            token_url=f"{handle.base_url}/oauth/token/",
        )
        portal = PortalConfig(name="acme", oauth=oauth, timezone=ZoneInfo("UTC"), default_region="RU")
        yield Env(sandbox, handle, session, redis, redis_url, prefix, Clock(), portal)


@pytest.fixture
async def workers(env: Env) -> AsyncIterator[list[PortalAuth]]:
    """Four PortalAuth instances with their own Redis clients, as four worker processes."""
    clients = [Redis.from_url(env.redis_url) for _ in range(4)]
    yield [env.auth(client) for client in clients]
    for client in clients:
        await client.aclose()


async def test_first_credentials_refresh_once_and_are_stored(env: Env) -> None:
    """With nothing stored, credentials() refreshes with the configured token once; later calls reuse it."""
    auth = env.auth()
    creds = await auth.credentials(env.portal)
    assert creds.base_url == f"{env.handle.base_url}/rest/"
    assert await env.callback(creds) == 200
    assert await auth.credentials(env.portal) == creds
    assert await env.auth().credentials(env.portal) == creds  # another worker finds it stored
    assert [r.status for r in env.token_requests()] == [200]
    stored = await cast(
        Awaitable[dict[bytes, bytes]], env.redis.hgetall(OAuthKeys(env.prefix).tokens("acme"))
    )
    assert {b"access_token", b"refresh_token", b"expires_at", b"client_endpoint"} <= set(stored)
    assert await env.redis.ttl(OAuthKeys(env.prefix).tokens("acme")) == -1


async def test_four_workers_refresh_an_expired_token_once(env: Env, workers: list[PortalAuth]) -> None:
    """Four workers racing refresh(stale) after an expiry cause one token request and share its token."""
    stale = await workers[0].credentials(env.portal)
    env.sandbox.expire_access_tokens("acme")
    with pytest.raises(BitrixApiError) as expired:
        await env.callback(stale)
    assert expired.value.code == "expired_token"

    with capture_logs() as logs:
        fresh = await asyncio.gather(
            *(auth.refresh(env.portal, stale_access_token=stale.access_token) for auth in workers)
        )
    assert len(env.token_requests()) == 2  # the first start, then exactly one for this round
    events = sorted(entry["event"] for entry in logs if entry["event"].startswith("oauth."))
    assert events == ["oauth.refresh_shared"] * 3 + ["oauth.refreshed"]
    assert len({creds.access_token for creds in fresh}) == 1
    assert fresh[0].access_token != stale.access_token
    assert await env.callback(fresh[0]) == 200
    assert not await env.redis.exists(OAuthKeys(env.prefix).lock("acme"))


async def test_rotation_persists_the_new_refresh_token(env: Env, workers: list[PortalAuth]) -> None:
    """Each refresh stores the new refresh token, so a second expiry round refreshes successfully with it."""
    creds = await workers[0].credentials(env.portal)
    for round_ in range(2):
        env.sandbox.expire_access_tokens("acme")
        results = await asyncio.gather(
            *(auth.refresh(env.portal, stale_access_token=creds.access_token) for auth in workers)
        )
        creds = results[round_]
        assert await env.callback(creds) == 200
    requests = env.token_requests()
    assert [r.status for r in requests] == [200, 200, 200]
    assert env.portal.oauth is not None
    assert requests[0].refresh_token == env.portal.oauth.refresh_token
    assert len({r.refresh_token for r in requests}) == 3  # each round used the token the last one stored
    stored = await cast(
        Awaitable[bytes | None], env.redis.hget(OAuthKeys(env.prefix).tokens("acme"), "refresh_token")
    )
    assert stored is not None and stored.decode() not in {r.refresh_token for r in requests}


async def test_invalid_grant_raises_auth_refused_once(env: Env, workers: list[PortalAuth]) -> None:
    """A refused refresh token fails every racing worker after one request, and later calls without one."""
    portal = env.with_oauth(refresh_token="never-issued")
    outcomes = await asyncio.gather(*(auth.credentials(portal) for auth in workers), return_exceptions=True)
    assert all(isinstance(outcome, AuthRefused) for outcome in outcomes)
    refused = outcomes[0]
    assert isinstance(refused, AuthRefused)
    assert (refused.code, refused.http_status, refused.portal) == ("invalid_grant", 400, "acme")
    with pytest.raises(AuthRefused):
        await workers[0].credentials(portal)
    assert [r.error for r in env.token_requests()] == ["invalid_grant"]


async def test_refusal_memo_expires_so_a_later_probe_asks_again(env: Env) -> None:
    """The refusal is remembered only about a lock timeout; a probe after that asks the endpoint once more."""
    auth = env.auth(lock_timeout_s=0.3)
    portal = env.with_oauth(refresh_token="never-issued")
    with pytest.raises(AuthRefused):
        await auth.credentials(portal)
    memo = OAuthKeys(env.prefix).refused("acme")
    deadline = time.monotonic() + 5
    while await env.redis.exists(memo):
        assert time.monotonic() < deadline, "the refusal memo never expired"
        await asyncio.sleep(0.05)
    with pytest.raises(AuthRefused):
        await auth.credentials(portal)
    assert len(env.token_requests()) == 2


async def test_wrong_client_secret_is_invalid_client(env: Env) -> None:
    """A wrong client secret raises AuthRefused invalid_client and stores nothing."""
    with pytest.raises(AuthRefused) as refused:
        await env.auth().credentials(env.with_oauth(client_secret="wrong"))
    assert (refused.value.code, refused.value.http_status) == ("invalid_client", 401)
    assert not await env.redis.exists(OAuthKeys(env.prefix).tokens("acme"))


async def test_dead_lock_holder_blocks_only_until_its_ttl(env: Env) -> None:
    """A lock left by a worker that died expires with its TTL, and a waiter then refreshes."""
    await env.redis.set(OAuthKeys(env.prefix).lock("acme"), "dead-worker", px=300)
    began = time.monotonic()
    creds = await env.auth().credentials(env.portal)
    waited = time.monotonic() - began
    assert 0.25 <= waited < 2.0
    assert await env.callback(creds) == 200
    assert len(env.token_requests()) == 1


async def test_waiter_gives_up_when_the_lock_is_held_too_long(env: Env) -> None:
    """A waiter stops after twice the lock timeout with AuthUnavailable, without calling the endpoint."""
    await env.redis.set(OAuthKeys(env.prefix).lock("acme"), "slow-worker", px=10_000)
    with pytest.raises(AuthUnavailable, match="took too long"):
        await env.auth(lock_timeout_s=0.2).credentials(env.portal)
    assert env.token_requests() == []


async def test_unreachable_token_endpoint_is_unavailable_and_frees_the_lock(env: Env) -> None:
    """A token endpoint that refuses connections raises AuthUnavailable, and the lock is released."""
    with pytest.raises(AuthUnavailable, match="unreachable"):
        await env.auth().credentials(env.with_oauth(token_url="http://127.0.0.1:1/oauth/token/"))
    assert not await env.redis.exists(OAuthKeys(env.prefix).lock("acme"))


async def test_token_is_refreshed_shortly_before_its_known_expiry(env: Env) -> None:
    """A request within the margin of the known expiry refreshes first; with no margin it does not."""
    auth = env.auth(refresh_margin_s=60.0)
    first = await auth.credentials(env.portal)
    env.clock.now += timedelta(seconds=3500)
    assert await auth.credentials(env.portal) == first
    env.clock.now += timedelta(seconds=50)
    second = await auth.credentials(env.portal)
    assert second != first
    env.clock.now += timedelta(seconds=7200)
    assert await env.auth(refresh_margin_s=None).credentials(env.portal) == second
    assert len(env.token_requests()) == 2


async def test_failed_early_refresh_keeps_the_still_valid_token(env: Env) -> None:
    """If the early refresh cannot reach the endpoint, the token that has not expired yet is used."""
    first = await env.auth().credentials(env.portal)
    env.clock.now += timedelta(seconds=3570)
    unreachable = env.with_oauth(token_url="http://127.0.0.1:1/oauth/token/")
    assert await env.auth().credentials(unreachable) == first
    env.clock.now += timedelta(seconds=60)
    with pytest.raises(AuthUnavailable):
        await env.auth().credentials(unreachable)


async def test_a_newly_configured_refresh_token_restarts_the_chain(env: Env) -> None:
    """After re-authorizing (a new refresh token in the config) the stored chain is not used."""
    await env.auth().credentials(env.portal)
    renewed = env.sandbox.issue_refresh_token("acme", CLIENT_ID)
    creds = await env.auth().credentials(env.with_oauth(refresh_token=renewed))
    assert await env.callback(creds) == 200
    assert [r.refresh_token for r in env.token_requests()][-1] == renewed


async def test_send_with_refresh_repeats_once_after_expired_token(env: Env) -> None:
    """An expired_token answer leads to one refresh and one more send; the callback runs once."""
    auth = env.auth()
    await auth.credentials(env.portal)
    env.sandbox.expire_access_tokens("acme")

    async def send(creds: Credentials) -> int:
        return await env.callback(creds)

    assert await send_with_refresh(auth, env.portal, send) == 200
    calls = env.sandbox.calls("acme")
    assert [(c.status, c.executed) for c in calls] == [(401, False), (200, True)]
    assert len(env.token_requests()) == 2


async def test_logs_name_the_portal_and_never_a_secret(env: Env) -> None:
    """Refresh events carry the portal and no token, refresh token or client secret."""
    assert env.portal.oauth is not None
    with capture_logs() as logs:
        creds = await env.auth().credentials(env.portal)
        with pytest.raises(AuthRefused):
            await env.auth().credentials(
                env.with_oauth(client_secret="wrong-s3cret", refresh_token="r3fresh")
            )
    events = [(entry["event"], entry.get("portal")) for entry in logs]
    assert ("oauth.refreshed", "acme") in events
    assert ("oauth.refresh_failed", "acme") in events
    text = repr(logs)
    for secret in (creds.access_token, env.portal.oauth.refresh_token, SECRET, "wrong-s3cret", "r3fresh"):
        assert secret is not None and secret not in text
