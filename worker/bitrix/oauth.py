"""A portal's credentials: its webhook, or its OAuth 2.0 access token, refreshed single-flight.

Bitrix24 rotates refresh tokens (https://apidocs.bitrix24.com/settings/oauth/auto-renewal.html):
each refresh answers a new access token *and a new refresh token*, and the one just used stops
working. So every worker process shares one token pair per portal in Redis, and only one of them
refreshes at a time: two refreshes with the same refresh token would end in ``invalid_grant`` and a
halted portal.

When to refresh: on ``expired_token`` (the caller calls :meth:`PortalAuth.refresh`, as Bitrix24
advises), and lazily when a request is about to use a token whose known expiry (local clock) is
less than ``refresh_margin_s`` away. The latter costs no extra refreshes, one per token lifetime
either way, and only while requests are made; it is never a timer and saves the failed request.
A refusal (``invalid_grant``, ``invalid_client``, ...) raises :class:`AuthRefused` and is never
retried with the same refresh token while its memo lives; an unreachable token endpoint raises
:class:`AuthUnavailable`.

Use: ``creds = await auth.credentials(portal)`` before a request, send ``auth_params(creds)`` with
it to ``creds.base_url``; on ``expired_token`` call ``auth.refresh(portal,
stale_access_token=creds.access_token)`` and send once more (:func:`send_with_refresh` does both).
The pure parts (the token pair, its keys, when to refresh, reading the token endpoint's answer)
are :mod:`worker.bitrix.oauth_tokens`; the exceptions are in :mod:`worker.bitrix.errors`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Awaitable, Callable
from typing import TypeVar, cast

import aiohttp
import structlog
from redis.asyncio import Redis

from schemas.clock import Clock, utcnow
from schemas.config import OAuthConfig, PortalConfig
from schemas.policy.redact import Redactor
from schemas.store.ledger import WriteRetry, send_once
from worker.bitrix.client import USER_AGENT
from worker.bitrix.codes import BitrixCode
from worker.bitrix.errors import AuthRefused, AuthUnavailable, BitrixApiError
from worker.bitrix.oauth_tokens import (
    Credentials,
    OAuthKeys,
    TokenSet,
    auth_params,
    classify_token_error,
    fingerprint,
    needs_refresh,
    parse_token_response,
    seed_of,
)

__all__ = [  # with the names now in worker.bitrix.errors and worker.bitrix.oauth_tokens, still importable from here
    "AuthRefused",
    "AuthUnavailable",
    "Credentials",
    "OAuthKeys",
    "PortalAuth",
    "TokenSet",
    "auth_params",
    "classify_token_error",
    "needs_refresh",
    "parse_token_response",
    "send_with_refresh",
]

log = structlog.get_logger("callq.auth")

_RELEASE = """
-- KEYS: lock; ARGV: the holder's token. Delete the lock only if it is still ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
T = TypeVar("T")


def _of_config(stored: TokenSet | None, oauth: OAuthConfig) -> TokenSet | None:
    """The stored set, unless it descends from another configured client or refresh token."""
    return stored if stored is not None and stored.seed == seed_of(oauth) else None


class PortalAuth:
    """Credentials of every portal for one worker process; the token store is shared in Redis.

    Args:
        redis: Client of the deployment's Redis.
        prefix: The deployment's key prefix (``Keys.prefix``).
        session: The process's aiohttp session (for the token endpoint).
        clock: The wall clock (``Deps.clock``); token expiry is kept as unix time.
        lock_timeout_s: Lifetime of the refresh lock; waiters give up after twice this.
        refresh_margin_s: Refresh a token this long before its known expiry when a request needs
            it (at most a quarter of its lifetime); None refreshes only on ``expired_token``.
        poll_interval_s: First pause between looks while another worker refreshes (it doubles,
            up to 0.5 s).
        retry: What to do when Redis refuses to store new tokens for being full (the worker: keep
            them and try until it takes them; the refresh token they replace no longer works).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        session: aiohttp.ClientSession,
        clock: Clock = utcnow,
        lock_timeout_s: float = 30.0,
        refresh_margin_s: float | None = 60.0,
        poll_interval_s: float = 0.05,
        retry: WriteRetry = send_once,
    ) -> None:
        if lock_timeout_s <= 0 or poll_interval_s <= 0:
            raise ValueError("lock_timeout_s and poll_interval_s must be positive")
        self.redis, self.keys, self.session, self.clock = redis, OAuthKeys(prefix), session, clock
        self.lock_timeout_s = lock_timeout_s
        self.refresh_margin_s = refresh_margin_s
        self.poll_interval_s = poll_interval_s
        self.retry = retry
        self._release = redis.register_script(_RELEASE)
        self._local: dict[str, asyncio.Lock] = {}  # one refresher per portal inside this process
        half = lock_timeout_s / 2
        self._timeout = aiohttp.ClientTimeout(total=half, connect=min(5.0, half), sock_read=half)

    async def credentials(self, portal: PortalConfig) -> Credentials:
        """The credentials to send a request with, refreshing first only if there is no token yet
        or it is within the refresh margin of its expiry.

        Raises:
            AuthRefused: A refresh was needed and refused.
            AuthUnavailable: A refresh was needed (no usable token) and could not be done now.
        """
        if portal.oauth is None:
            assert portal.webhook_url is not None  # PortalConfig holds exactly one of the two
            return Credentials(portal.webhook_url, None)
        stored = await self._stored(portal.name, portal.oauth)
        if stored is None:
            return await self.refresh(portal, stale_access_token=None)
        now_s = self.clock().timestamp()
        if not self._due(stored, now_s):
            return stored.credentials()
        try:
            return await self.refresh(portal, stale_access_token=stored.access_token)
        except AuthUnavailable:
            if now_s >= stored.expires_at:
                raise
            return stored.credentials()  # an early refresh failed: the token still works a while

    async def refresh(self, portal: PortalConfig, *, stale_access_token: str | None) -> Credentials:
        """Get a new access token, once for all workers: the caller saw ``stale_access_token`` fail
        (``expired_token``) or found none (None). If another worker already replaced it, its token
        is returned without calling the token endpoint.

        Raises:
            ValueError: The portal uses a webhook.
            AuthRefused: The token endpoint refused (also remembered briefly: not asked again).
            AuthUnavailable: Unreachable, 5xx, or another worker held the lock too long.
        """
        if portal.oauth is None:
            raise ValueError(f"portal {portal.name!r} uses a webhook: there is no token to refresh")
        async with self._local.setdefault(portal.name, asyncio.Lock()):
            return await self._refresh_shared(portal.name, portal.oauth, stale_access_token)

    async def _refresh_shared(self, name: str, oauth: OAuthConfig, stale: str | None) -> Credentials:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2 * self.lock_timeout_s
        holder, pause_s = secrets.token_hex(16), self.poll_interval_s
        while True:
            stored = await self._usable_or_none(name, oauth, stale)
            if isinstance(stored, Credentials):
                return stored
            if await self.redis.set(
                self.keys.lock(name), holder, nx=True, px=int(self.lock_timeout_s * 1000)
            ):
                try:
                    # Double-check under the lock: the previous holder may have just finished.
                    stored = await self._usable_or_none(name, oauth, stale)
                    if isinstance(stored, Credentials):
                        return stored
                    return await self._refresh_locked(name, oauth, stored)
                finally:
                    await self._release(keys=[self.keys.lock(name)], args=[holder])
            if loop.time() >= deadline:
                raise AuthUnavailable(portal=name, description="another worker's token refresh took too long")
            await asyncio.sleep(min(pause_s, max(deadline - loop.time(), 0.0)))
            pause_s = min(pause_s * 2, 0.5)

    async def _usable_or_none(
        self, name: str, oauth: OAuthConfig, stale: str | None
    ) -> Credentials | TokenSet | None:
        """Someone else's fresh token as credentials; else the stored set (None: start from config).

        Raises:
            AuthRefused: The refresh token we would use was refused a moment ago.
        """
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.keys.tokens(name))
            pipe.get(self.keys.refused(name))
            raw, refused = await pipe.execute()
        stored = _of_config(TokenSet.from_hash(raw), oauth)
        if (
            stored is not None
            and stored.access_token != stale
            and not self._due(stored, self.clock().timestamp())
        ):
            log.debug("oauth.refresh_shared", portal=name)
            return stored.credentials()
        memo = json.loads(refused) if refused else None
        refresh_token = stored.refresh_token if stored else oauth.refresh_token
        if memo and memo.get("refresh_fp") == fingerprint(refresh_token):
            raise AuthRefused(
                portal=name,
                code=memo["code"],
                description=memo["description"],
                http_status=memo["http_status"],
            )
        return stored

    async def _refresh_locked(self, name: str, oauth: OAuthConfig, stored: TokenSet | None) -> Credentials:
        refresh_token = stored.refresh_token if stored else oauth.refresh_token
        now_s, fallback = self.clock().timestamp(), f"https://{oauth.domain}/rest/"
        try:
            http_status, text = await self._request(name, oauth, refresh_token)
            tokens = parse_token_response(
                name,
                http_status,
                text,
                now_s=now_s,
                default_endpoint=fallback,
                seed=seed_of(oauth),
                secrets=(refresh_token, oauth.client_secret),
            )
        except AuthRefused as refused:
            current = await self._stored(name, oauth)
            if current is not None and current.refresh_token != refresh_token:
                return current.credentials()  # rotated by a holder whose lock we outlived: not a refusal
            memo = {
                "refresh_fp": fingerprint(refresh_token),
                "code": refused.code,
                "description": refused.description,
                "http_status": refused.http_status,
            }
            await self.redis.set(
                self.keys.refused(name), json.dumps(memo), px=int(self.lock_timeout_s * 1000)
            )
            log.error(
                "oauth.refresh_failed",
                portal=name,
                code=refused.code,
                description=refused.description,
                http_status=refused.http_status,
                refused=True,
            )
            raise
        except AuthUnavailable as unavailable:
            log.warning(
                "oauth.refresh_failed",
                portal=name,
                description=unavailable.description,
                http_status=unavailable.http_status,
                refused=False,
            )
            raise
        # One HSET: the new access and refresh tokens land together, never half a rotation.
        # Kept until Redis takes it: the old refresh token stopped working when this one was issued.
        key, mapping = self.keys.tokens(name), dict(tokens.to_hash())
        await self.retry(
            lambda: cast(Awaitable[int], self.redis.hset(key, mapping=mapping)), where="oauth tokens"
        )
        log.info("oauth.refreshed", portal=name, expires_in_s=round(tokens.lifetime_s))
        return tokens.credentials()

    async def _request(self, name: str, oauth: OAuthConfig, refresh_token: str) -> tuple[int, str]:
        params = {
            "grant_type": "refresh_token",
            "client_id": oauth.client_id,
            "client_secret": oauth.client_secret,
            "refresh_token": refresh_token,
        }
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        try:
            async with self.session.get(
                oauth.token_url, params=params, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                return response.status, await response.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            # the exception may quote the request URL, with the client secret and refresh token
            known = Redactor([oauth.client_secret, refresh_token])
            description = known.text(f"token endpoint unreachable: {type(exc).__name__}: {exc}")
            raise AuthUnavailable(portal=name, description=description) from None

    async def _stored(self, name: str, oauth: OAuthConfig) -> TokenSet | None:
        raw = await cast(Awaitable[dict[bytes, bytes]], self.redis.hgetall(self.keys.tokens(name)))
        return _of_config(TokenSet.from_hash(raw), oauth)

    def _due(self, stored: TokenSet, now_s: float) -> bool:
        return needs_refresh(
            now_s=now_s,
            expires_at_s=stored.expires_at,
            lifetime_s=stored.lifetime_s,
            margin_s=self.refresh_margin_s,
        )


async def send_with_refresh(
    auth: PortalAuth, portal: PortalConfig, send: Callable[[Credentials], Awaitable[T]]
) -> T:
    """Send with the portal's credentials; on ``expired_token`` refresh (single-flight) and send once more.

    ``expired_token`` is refused before the method runs, so the second send cannot double a callback.

    Raises:
        BitrixApiError: From ``send`` (a second ``expired_token`` included: no loop).
        AuthRefused, AuthUnavailable: From the refresh.
    """
    creds = await auth.credentials(portal)
    try:
        return await send(creds)
    except BitrixApiError as error:
        if creds.access_token is None or BitrixCode.of(error.code) is not BitrixCode.EXPIRED_TOKEN:
            raise
    return await send(await auth.refresh(portal, stale_access_token=creds.access_token))
