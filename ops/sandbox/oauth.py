"""The sandbox's OAuth 2.0 side: a token endpoint and the access tokens REST calls carry.

It behaves like Bitrix24's authorization server
(https://apidocs.bitrix24.com/settings/oauth/auto-renewal.html):
`GET /oauth/token/?grant_type=refresh_token&client_id=&client_secret=&refresh_token=` answers a new
access token *and a new refresh token*; the refresh token just used is invalid from then on
(rotation). A REST call in the OAuth form, `/rest/METHOD` with the access token as `auth`, runs as
its portal's webhook would while the token is valid. Installing the app (the authorization-code
step, a human in a browser) is replaced by `OAuthServer.issue_refresh_token`.

Errors: a wrong client is 401 `invalid_client`, an unknown or used refresh token 400 `invalid_grant`,
a missing parameter or another grant type 400 `invalid_request`. A REST call with an expired token
is 401 `expired_token`, with an unknown one `invalid_token` (401: Bitrix24's list of error codes,
https://apidocs.bitrix24.com/error-codes.html, does not confirm this status; its Python SDK,
b24pysdk, groups the code with the 401 errors).

Pure state, no I/O: `ops.sandbox.state.Sandbox` owns one server and the aiohttp layer serves it.
The sandbox's tokens are test data, not secrets, so requests are recorded with them.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog

from ops.sandbox.methods import error_body, php_string
from ops.sandbox.portal import DEFAULT_USER_ID, SandboxPortal

log = structlog.get_logger(__name__)

TOKEN_PATHS = ("/oauth/token/", "/oauth/token")
REFRESH_GRANT = "refresh_token"
SCOPE = "call,telephony"
APP_STATUS = "L"  # app.info's status of a local (not Market) application

_TOKEN_PARAMS = ("grant_type", "client_id", "client_secret", "refresh_token")


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One request to the token endpoint, as the sandbox answered it.

    Attributes:
        portal: The portal of the refresh token (else of the client); None if neither is known.
        client_id: As sent.
        grant_type: As sent.
        refresh_token: As sent (sandbox tokens are test data).
        status: The HTTP status answered.
        error: The OAuth error code answered, or None for a new token pair.
        received_wall: When it arrived, as unix time.
    """

    portal: str | None
    client_id: str
    grant_type: str
    refresh_token: str
    status: int
    error: str | None
    received_wall: float

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form served by `GET /_sandbox/oauth/requests`."""
        return {
            "portal": self.portal,
            "client_id": self.client_id,
            "grant_type": self.grant_type,
            "refresh_token": self.refresh_token,
            "status": self.status,
            "error": self.error,
            "received_wall": self.received_wall,
        }


@dataclass(frozen=True, slots=True)
class TokenCheck:
    """What the `auth` parameter of a REST call in the OAuth form says.

    Attributes:
        portal: The portal the token belongs to, also when it has expired; None if unknown.
        status: 200 for a valid token, else the HTTP status of the refusal (401).
        refusal: The error body when the token does not authenticate the call, else None.
    """

    portal: str | None
    status: int = 200
    refusal: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class _Token:
    portal: str
    client_id: str
    expires_at: float = float("inf")


class OAuthServer:
    """Refresh tokens, access tokens and the record of token requests of every portal."""

    def __init__(self, *, wall_clock: Callable[[], float]) -> None:
        """Start with no tokens.

        Args:
            wall_clock: Unix-time clock; access tokens expire by it, like the `expires` field.
        """
        self._wall_clock = wall_clock
        self._refresh: dict[str, _Token] = {}
        self._access: dict[str, _Token] = {}
        self._requests: list[TokenRequest] = []

    def issue_refresh_token(self, portal: SandboxPortal, client_id: str) -> str:
        """Hand out a first refresh token, as installing the app on the portal would.

        Raises:
            ValueError: If the client is not one of the portal's `oauth_clients`.
        """
        if client_id not in portal.oauth_clients:
            raise ValueError(f"client {client_id!r} is not installed on portal {portal.name!r}")
        token = _new_token()
        self._refresh[token] = _Token(portal.name, client_id)
        return token

    def token(
        self, portals: Mapping[str, SandboxPortal], params: Mapping[str, Any], *, base_url: str
    ) -> tuple[int, dict[str, Any]]:
        """Answer one token-endpoint request and record it.

        Args:
            portals: The sandbox's portals by name (their `oauth_clients` and token lifetimes).
            params: The request's parameters (query merged with body).
            base_url: Where the sandbox listens, e.g. `http://127.0.0.1:54321`.

        Returns:
            The HTTP status and the JSON body.
        """
        grant_type, client_id, client_secret, refresh = (php_string(params.get(key)) for key in _TOKEN_PARAMS)
        grant = self._refresh.get(refresh)
        owner = (
            grant.portal
            if grant
            else next((p.name for p in portals.values() if client_id in p.oauth_clients), None)
        )
        status, body = self._answer(portals, grant_type, client_id, client_secret, refresh, base_url)
        error = body.get("error")
        request = TokenRequest(owner, client_id, grant_type, refresh, status, error, self._wall_clock())
        self._requests.append(request)
        log.info("sandbox.oauth_token", portal=owner, client_id=client_id, status=status, error=error)
        return status, body

    def check(self, token: str, *, oauth_enabled: bool) -> TokenCheck:
        """Check the `auth` parameter of a REST call in the OAuth form.

        Args:
            token: The `auth` value ("" when absent).
            oauth_enabled: Whether any portal has an OAuth client. Without one, an unknown token
                answers `NO_AUTH_FOUND`, as the sandbox did before it knew tokens.

        Returns:
            The token's portal and, unless the token is valid, the refusal.
        """
        access = self._access.get(token) if token else None
        if access is None:
            if token and oauth_enabled:
                return TokenCheck(
                    None, 401, error_body("invalid_token", "Unable to get application by token")
                )
            return TokenCheck(None, 401, error_body("NO_AUTH_FOUND", "Wrong authorization data"))
        if self._wall_clock() >= access.expires_at:
            return TokenCheck(
                access.portal, 401, error_body("expired_token", "The access token provided has expired.")
            )
        return TokenCheck(access.portal)

    def expire_access_tokens(self, portal: str) -> int:
        """Expire every access token of `portal` now (its refresh tokens stay valid); return how many."""
        now = self._wall_clock()
        mine = [
            key for key, token in self._access.items() if token.portal == portal and token.expires_at > now
        ]
        for key in mine:
            self._access[key] = _Token(portal, self._access[key].client_id, now)
        return len(mine)

    def forget_portal(self, portal: str) -> None:
        """Drop every token of `portal` (it was replaced: its app is installed afresh)."""
        self._refresh = {key: token for key, token in self._refresh.items() if token.portal != portal}
        self._access = {key: token for key, token in self._access.items() if token.portal != portal}

    def requests(self, portal: str | None = None) -> list[TokenRequest]:
        """Return the recorded token requests, oldest first; only `portal`'s unless None."""
        return [request for request in self._requests if portal is None or request.portal == portal]

    def clear_requests(self) -> None:
        """Forget the recorded token requests (tokens stay valid)."""
        self._requests.clear()

    def _answer(
        self,
        portals: Mapping[str, SandboxPortal],
        grant_type: str,
        client_id: str,
        client_secret: str,
        refresh: str,
        base_url: str,
    ) -> tuple[int, dict[str, Any]]:
        if not all((grant_type, client_id, client_secret, refresh)):
            return 400, error_body("invalid_request", f"{', '.join(_TOKEN_PARAMS)} are required")
        if grant_type != REFRESH_GRANT:
            return 400, error_body("invalid_request", "the sandbox supports only grant_type=refresh_token")
        # One application may be installed on several portals: the client is checked on its own,
        # the refresh token then says which portal.
        if not any(p.oauth_clients.get(client_id) == client_secret for p in portals.values()):
            return 401, error_body("invalid_client", "Invalid client credentials")
        grant = self._refresh.get(refresh)
        portal = portals.get(grant.portal) if grant else None
        if grant is None or portal is None or grant.client_id != client_id:
            return 400, error_body("invalid_grant", "Invalid refresh token")
        del self._refresh[refresh]  # rotation: a refresh token works once
        now = self._wall_clock()
        access, new_refresh = _new_token(), _new_token()
        self._access[access] = _Token(portal.name, client_id, now + portal.token_lifetime_s)
        self._refresh[new_refresh] = _Token(portal.name, client_id)
        lifetime = portal.token_lifetime_s
        return (
            200,
            {
                "access_token": access,
                "expires": int(now + lifetime),
                "expires_in": int(lifetime) if lifetime.is_integer() else lifetime,
                "scope": SCOPE,
                "domain": urlsplit(base_url).netloc,  # the authorization server's host, not the portal's
                "server_endpoint": f"{base_url}/rest/",
                "status": APP_STATUS,
                "client_endpoint": f"{base_url}/rest/",
                "member_id": hashlib.sha256(portal.name.encode()).hexdigest()[:32],  # stable per portal
                "user_id": DEFAULT_USER_ID,
                "refresh_token": new_refresh,
            },
        )


def _new_token() -> str:
    return secrets.token_hex(24)
