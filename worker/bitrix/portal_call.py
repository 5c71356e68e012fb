"""One request to a portal's REST method the way every request goes: its credentials (a webhook, or an
OAuth token refreshed once for all workers), its current address (it may have moved), and a single
send (no retry). Used for the helper methods (``scope``, ``voximplant.line.get``,
``voximplant.tts.voices.get``) by the pre-flight, ``callq lines``/``voices`` and the workers' voice
refresh; :mod:`worker.jobs.run` composes the same parts around ``voximplant.callback.start``."""

from __future__ import annotations

from typing import Any

import aiohttp

from schemas.config import PortalConfig
from worker.bitrix.address import PortalAddresses
from worker.bitrix.client import DEFAULT_TIMEOUT, call_method
from worker.bitrix.oauth import PortalAuth, send_with_refresh
from worker.bitrix.oauth_tokens import Credentials, auth_params


async def call_portal(
    session: aiohttp.ClientSession,
    portal: PortalConfig,
    method: str,
    params: dict[str, Any] | None = None,
    *,
    auth: PortalAuth,
    addresses: PortalAddresses,
    client_timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
) -> dict[str, Any]:
    """Call ``method`` on ``portal`` once (after an ``expired_token`` refresh, or a move, once more).

    Returns:
        The answer's body (``result``, ``time``).

    Raises:
        BitrixCallError: the portal refused or did not answer usably.
        AuthRefused, AuthUnavailable: an OAuth token could not be had.
        RedisError: the token store or the address store did not answer.
    """

    async def send(creds: Credentials) -> dict[str, Any]:
        body = {**(params or {}), **auth_params(creds)}
        _status, answer = await call_method(
            session, creds.base_url, method, body, client_timeout=client_timeout
        )
        return answer

    return await send_with_refresh(auth, portal, lambda creds: addresses.send(portal, creds, send))
