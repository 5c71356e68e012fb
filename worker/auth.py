"""A portal's credentials: its webhook, or its OAuth 2.0 access token, refreshed single-flight.

Bitrix24 (``/work/shared/bitrix24.md`` §5) rotates refresh tokens: each refresh answers a new
access token *and a new refresh token*, and the one just used stops working. So every worker
process shares one token pair per portal in Redis, and only one of them refreshes at a time: two
refreshes with the same refresh token would end in ``invalid_grant`` and a halted portal.

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
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, TypeVar, cast

import aiohttp
import structlog
from redis.asyncio import Redis

from schemas.config import OAuthConfig, PortalConfig
from schemas.keys import Keys
from schemas.redact import redact_secrets
from worker.bitrix import USER_AGENT
from worker.classify import EXPIRED_TOKEN_CODES
from worker.errors import BitrixApiError, CallqError

log = structlog.get_logger("callq.auth")

DEFAULT_LIFETIME_S = 3600.0  # bitrix24.md §5: `expires_in` is 3600
REFUSAL_CODES = frozenset({
    "invalid_request", "invalid_client", "invalid_grant", "invalid_scope", "insufficient_scope",
    "unauthorized_client", "unsupported_grant_type", "payment_required", "access_denied",
})  # fmt: skip
TRANSIENT_CODES = frozenset({"query_limit_exceeded", "server_error", "temporarily_unavailable"})

_RELEASE = """
-- KEYS: lock; ARGV: the holder's token. Delete the lock only if it is still ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
T = TypeVar("T")


@dataclass(frozen=True)
class Credentials:
    """How to call a portal's REST API.

    Attributes:
        base_url: The webhook URL (``https://acme.bitrix24.ru/rest/1/code/``) or the OAuth
            ``client_endpoint`` (``https://acme.bitrix24.ru/rest/``); append the method name.
        access_token: None for a webhook; for OAuth, send it as ``auth`` (:func:`auth_params`).
    """

    base_url: str = field(repr=False)
    access_token: str | None = field(default=None, repr=False)


def auth_params(creds: Credentials) -> dict[str, str]:
    """The request parameters that authenticate a call: ``{"auth": token}``, or none for a webhook."""
    return {} if creds.access_token is None else {"auth": creds.access_token}


class AuthRefused(CallqError):
    """The token endpoint refused for good: halt the portal and tell ops (re-authorize the app).

    Attributes:
        portal: The portal's name.
        code: The OAuth error code (``invalid_grant``, ``invalid_client``, ...).
        description: What the endpoint said, without secrets.
        http_status: The HTTP status, if there was an answer.
    """

    def __init__(self, *, portal: str, code: str, description: str, http_status: int | None = None) -> None:
        super().__init__(f"{code}: {description}")
        self.portal, self.code, self.description, self.http_status = portal, code, description, http_status


class AuthUnavailable(CallqError):
    """No token for now (token endpoint unreachable or 5xx, waited too long): retry later.

    Attributes:
        portal: The portal's name.
        description: What went wrong, without secrets.
        http_status: The HTTP status, if there was an answer.
    """

    def __init__(self, *, portal: str, description: str, http_status: int | None = None) -> None:
        super().__init__(description)
        self.portal, self.description, self.http_status = portal, description, http_status


@dataclass(frozen=True)
class OAuthKeys:
    """Redis keys of the OAuth token store (``schemas.keys`` style, kept here with their user)."""

    prefix: str

    @classmethod
    def of(cls, keys: Keys) -> OAuthKeys:
        """The OAuth keys under a deployment's :class:`Keys` prefix."""
        return cls(keys.prefix)

    def tokens(self, portal: str) -> str:
        """Hash: access_token, refresh_token, expires_at, lifetime_s, client_endpoint, seed. No TTL:
        after a rotation its refresh token is the only valid one; losing it means re-authorizing."""
        return f"{self.prefix}:oauth:{portal}"

    def lock(self, portal: str) -> str:
        """String: the refresher's random token. PX ``lock_timeout_s`` frees it if the holder dies;
        the token request's own timeout is half that, so a live holder never outlives its lock."""
        return f"{self.prefix}:oauth-lock:{portal}"

    def refused(self, portal: str) -> str:
        """String (JSON) naming the refresh token just refused. PX ``lock_timeout_s``: long enough that
        the workers waiting on the same refresh give up instead of repeating it, short enough that a
        probe after the portal's halt (or a paid subscription) tries once more."""
        return f"{self.prefix}:oauth-refused:{portal}"


@dataclass(frozen=True)
class TokenSet:
    """A token pair as stored; ``seed`` tells which configured refresh token the chain started from."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float
    lifetime_s: float
    client_endpoint: str
    seed: str

    def credentials(self) -> Credentials:
        """The credentials for REST calls."""
        return Credentials(self.client_endpoint, self.access_token)

    def to_hash(self) -> dict[str, str]:
        """The fields of the Redis hash."""
        return {"access_token": self.access_token, "refresh_token": self.refresh_token,
                "expires_at": repr(self.expires_at), "lifetime_s": repr(self.lifetime_s),
                "client_endpoint": self.client_endpoint, "seed": self.seed}  # fmt: skip

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes] | Mapping[str, str]) -> TokenSet | None:
        """Read the hash back; None if it is empty or incomplete."""
        text = {_text(key): _text(value) for key, value in raw.items()}
        try:
            return cls(text["access_token"], text["refresh_token"], float(text["expires_at"]),
                       float(text["lifetime_s"]), text["client_endpoint"], text["seed"])  # fmt: skip
        except (KeyError, ValueError):
            return None


def seed_of(oauth: OAuthConfig) -> str:
    """Fingerprint of the configured client and refresh token: a newly configured token restarts the chain."""
    return fingerprint(f"{oauth.client_id}\0{oauth.refresh_token}")


def fingerprint(secret: str) -> str:
    """A short one-way digest, safe to store and compare instead of the secret."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def needs_refresh(*, now_s: float, expires_at_s: float, lifetime_s: float, margin_s: float | None) -> bool:
    """Whether a request about to use a token should refresh it first.

    Args:
        now_s: Unix time now.
        expires_at_s: When the token expires (local clock at refresh + ``expires_in``).
        lifetime_s: The token's lifetime; the margin never exceeds a quarter of it.
        margin_s: Refresh this long before the expiry; None refreshes only on ``expired_token``.
    """
    if margin_s is None:
        return False
    return now_s >= expires_at_s - min(margin_s, lifetime_s / 4)


def classify_token_error(http_status: int, code: str) -> Literal["refused", "unavailable"]:
    """An OAuth error code is a refusal; a rate limit, a server error or an unknown 5xx is transient."""
    lowered = code.lower()
    if lowered in REFUSAL_CODES:
        return "refused"
    if lowered in TRANSIENT_CODES or http_status >= 500 or http_status == 429:
        return "unavailable"
    return "refused"


def parse_token_response(
    portal: str, http_status: int, text: str, *, now_s: float, default_endpoint: str, seed: str
) -> TokenSet:
    """Turn the token endpoint's answer into a token set, or raise.

    Raises:
        AuthRefused: An OAuth error body (see :func:`classify_token_error`).
        AuthUnavailable: A transient error, or an answer without tokens.
    """
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        code, description = str(body["error"]), redact_secrets(str(body.get("error_description") or ""))
        if classify_token_error(http_status, code) == "refused":
            raise AuthRefused(portal=portal, code=code, description=description, http_status=http_status)
        raise AuthUnavailable(portal=portal, description=f"{code}: {description}", http_status=http_status)
    if (
        http_status != 200
        or not isinstance(body, dict)
        or not body.get("access_token")
        or not body.get("refresh_token")
    ):
        shown = redact_secrets(text[:200])
        raise AuthUnavailable(
            portal=portal, description=f"no tokens in HTTP {http_status}: {shown!r}", http_status=http_status
        )
    try:
        lifetime = float(body.get("expires_in") or 0) or float(body.get("expires") or 0) - now_s
    except (TypeError, ValueError):
        lifetime = 0.0
    lifetime = lifetime if lifetime > 0 else DEFAULT_LIFETIME_S
    endpoint = str(body.get("client_endpoint") or default_endpoint)
    return TokenSet(str(body["access_token"]), str(body["refresh_token"]), now_s + lifetime, lifetime,
                    endpoint if endpoint.endswith("/") else f"{endpoint}/", seed)  # fmt: skip


def _of_config(stored: TokenSet | None, oauth: OAuthConfig) -> TokenSet | None:
    """The stored set, unless it descends from another configured client or refresh token."""
    return stored if stored is not None and stored.seed == seed_of(oauth) else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _utcnow() -> datetime:
    return datetime.now(UTC)


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
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        session: aiohttp.ClientSession,
        clock: Callable[[], datetime] = _utcnow,
        lock_timeout_s: float = 30.0,
        refresh_margin_s: float | None = 60.0,
        poll_interval_s: float = 0.05,
    ) -> None:
        if lock_timeout_s <= 0 or poll_interval_s <= 0:
            raise ValueError("lock_timeout_s and poll_interval_s must be positive")
        self.redis, self.keys, self.session, self.clock = redis, OAuthKeys(prefix), session, clock
        self.lock_timeout_s = lock_timeout_s
        self.refresh_margin_s = refresh_margin_s
        self.poll_interval_s = poll_interval_s
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
                name, http_status, text, now_s=now_s, default_endpoint=fallback, seed=seed_of(oauth)
            )
        except AuthRefused as refused:
            current = await self._stored(name, oauth)
            if current is not None and current.refresh_token != refresh_token:
                return current.credentials()  # rotated by a holder whose lock we outlived: not a refusal
            memo = {"refresh_fp": fingerprint(refresh_token), "code": refused.code,
                    "description": refused.description, "http_status": refused.http_status}  # fmt: skip
            await self.redis.set(
                self.keys.refused(name), json.dumps(memo), px=int(self.lock_timeout_s * 1000)
            )
            log.error("oauth.refresh_failed", portal=name, code=refused.code, description=refused.description,
                      http_status=refused.http_status, refused=True)  # fmt: skip
            raise
        except AuthUnavailable as unavailable:
            log.warning("oauth.refresh_failed", portal=name, description=unavailable.description,
                        http_status=unavailable.http_status, refused=False)  # fmt: skip
            raise
        # One HSET: the new access and refresh tokens land together, never half a rotation.
        await cast(Awaitable[int], self.redis.hset(self.keys.tokens(name), mapping=dict(tokens.to_hash())))
        log.info("oauth.refreshed", portal=name, expires_in_s=round(tokens.lifetime_s))
        return tokens.credentials()

    async def _request(self, name: str, oauth: OAuthConfig, refresh_token: str) -> tuple[int, str]:
        params = {"grant_type": "refresh_token", "client_id": oauth.client_id,
                  "client_secret": oauth.client_secret, "refresh_token": refresh_token}  # fmt: skip
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        try:
            async with self.session.get(
                oauth.token_url, params=params, headers=headers, timeout=self._timeout, allow_redirects=False
            ) as response:
                return response.status, await response.text(errors="replace")
        except (aiohttp.ClientError, TimeoutError) as exc:
            description = redact_secrets(f"token endpoint unreachable: {type(exc).__name__}: {exc}")
            raise AuthUnavailable(portal=name, description=description) from None

    async def _stored(self, name: str, oauth: OAuthConfig) -> TokenSet | None:
        raw = await cast(Awaitable[dict[bytes, bytes]], self.redis.hgetall(self.keys.tokens(name)))
        return _of_config(TokenSet.from_hash(raw), oauth)

    def _due(self, stored: TokenSet, now_s: float) -> bool:
        return needs_refresh(now_s=now_s, expires_at_s=stored.expires_at, lifetime_s=stored.lifetime_s,
                             margin_s=self.refresh_margin_s)  # fmt: skip


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
        if creds.access_token is None or (error.code or "").lower() not in EXPIRED_TOKEN_CODES:
            raise
    return await send(await auth.refresh(portal, stale_access_token=creds.access_token))
