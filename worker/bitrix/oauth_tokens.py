"""OAuth 2.0 tokens as plain values: the stored token pair, its Redis keys and the pure policies.

Everything here is pure (no clock, no Redis, no network): when a token is due for refresh, how an
OAuth error code is classified, how the token endpoint's answer becomes a :class:`TokenSet`, and
the :class:`Credentials` a REST request is sent with. :mod:`worker.bitrix.oauth` does the I/O around them.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from schemas.config import OAuthConfig
from schemas.policy.redact import Redactor
from schemas.store.keys import Keys
from schemas.store.records import decode_text
from worker.bitrix.errors import AuthRefused, AuthUnavailable

DEFAULT_LIFETIME_S = 3600.0  # Bitrix24's token response: `expires_in` is 3600 (an access token lives 1 h)
REFUSAL_CODES = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "invalid_scope",
        "insufficient_scope",
        "unauthorized_client",
        "unsupported_grant_type",
        "payment_required",
        "access_denied",
    }
)
TRANSIENT_CODES = frozenset({"query_limit_exceeded", "server_error", "temporarily_unavailable"})


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


@dataclass(frozen=True)
class OAuthKeys:
    """Redis keys of the OAuth token store (``schemas.store.keys`` style, kept with the token values)."""

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
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": repr(self.expires_at),
            "lifetime_s": repr(self.lifetime_s),
            "client_endpoint": self.client_endpoint,
            "seed": self.seed,
        }

    @classmethod
    def from_hash(cls, raw: Mapping[bytes, bytes] | Mapping[str, str]) -> TokenSet | None:
        """Read the hash back; None if it is empty or incomplete."""
        text = {decode_text(key): decode_text(value) for key, value in raw.items()}
        try:
            return cls(
                text["access_token"],
                text["refresh_token"],
                float(text["expires_at"]),
                float(text["lifetime_s"]),
                text["client_endpoint"],
                text["seed"],
            )
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
    portal: str,
    http_status: int,
    text: str,
    *,
    now_s: float,
    default_endpoint: str,
    seed: str,
    secrets: Sequence[str] = (),
) -> TokenSet:
    """Turn the token endpoint's answer into a token set, or raise.

    Args:
        secrets: what the request sent (the refresh token, the client secret): masked wherever
            an error's code, description or quoted body echoes them, not only in their shapes.

    Raises:
        AuthRefused: An OAuth error body (see :func:`classify_token_error`).
        AuthUnavailable: A transient error, or an answer without tokens.
    """
    try:
        body = json.loads(text)
    except ValueError:
        body = None
    mask = Redactor(secrets).text
    if isinstance(body, dict) and body.get("error"):
        code, description = mask(str(body["error"])), mask(str(body.get("error_description") or ""))
        if classify_token_error(http_status, code) == "refused":
            raise AuthRefused(portal=portal, code=code, description=description, http_status=http_status)
        raise AuthUnavailable(portal=portal, description=f"{code}: {description}", http_status=http_status)
    if (
        http_status != 200
        or not isinstance(body, dict)
        or not body.get("access_token")
        or not body.get("refresh_token")
    ):
        shown = mask(text)[:200]  # masked before it is cut: a cut must not leave half a token
        raise AuthUnavailable(
            portal=portal, description=f"no tokens in HTTP {http_status}: {shown!r}", http_status=http_status
        )
    try:
        lifetime = float(body.get("expires_in") or 0) or float(body.get("expires") or 0) - now_s
    except (TypeError, ValueError):
        lifetime = 0.0
    lifetime = lifetime if lifetime > 0 else DEFAULT_LIFETIME_S
    endpoint = str(body.get("client_endpoint") or default_endpoint)
    return TokenSet(
        str(body["access_token"]),
        str(body["refresh_token"]),
        now_s + lifetime,
        lifetime,
        endpoint if endpoint.endswith("/") else f"{endpoint}/",
        seed,
    )
