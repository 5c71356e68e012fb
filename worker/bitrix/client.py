"""A minimal Bitrix24 REST client for the methods callq calls, over one shared aiohttp session.

It never retries: whether a failed ``voximplant.callback.start`` may be repeated is the job
runner's decision (:mod:`worker.policy.classify`), because the method has no idempotency key. It
follows no redirect either: one that :mod:`worker.policy.redirect` accepts as the portal's move is
raised as :class:`~worker.bitrix.errors.PortalMoved` (:mod:`worker.bitrix.address` sends again to
the new address and remembers it); any other stays an answer whose result is unknown.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from schemas.policy.redact import Redactor, number_spellings, redact_text, webhook_code
from schemas.wire.codes import ErrorCode
from worker.bitrix.errors import BitrixApiError, BitrixHttpError, PortalMoved, TransportError
from worker.policy.operating import OperatingReading
from worker.policy.redirect import REDIRECT_STATUSES, accept_redirect

USER_AGENT = "callq/0.1 (+https://github.com/callq)"
CALLBACK_START = "voximplant.callback.start"

# Bitrix24 stops any REST request after 60 s; a callback.start took ~1.7 s in the docs. 30 s
# total leaves room for a slow portal. The connect limit is short: a connect failure is safe to retry.
DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=30, connect=10, sock_connect=5, sock_read=30)


@dataclass(frozen=True)
class CallbackStarted:
    """A successful ``voximplant.callback.start``.

    Attributes:
        call_id: Bitrix24's CALL_ID; None when the portal returned none (REST-app lines).
        http_status: the HTTP status (200).
        operating: the method's execution-time figures (``time.operating``, ``operating_reset_at``), if sent.
    """

    call_id: str | None
    http_status: int
    operating: OperatingReading | None = None


def method_url(base_url: str, method: str) -> str:
    """``https://portal/rest/1/code/`` + ``voximplant.callback.start`` → the request URL."""
    return f"{base_url.rstrip('/')}/{method}.json"


async def call_method(
    session: aiohttp.ClientSession,
    base_url: str,
    method: str,
    params: dict[str, Any],
    *,
    client_timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
) -> tuple[int, dict[str, Any]]:
    """POST ``params`` as JSON to a method and return (HTTP status, successful body).

    Raises:
        BitrixApiError: a Bitrix24 error body.
        PortalMoved: a redirect to the portal's new address (nothing was run).
        BitrixHttpError: an answer that is neither a result nor an error body (a redirect not followed).
        TransportError: no answer; ``phase`` tells whether the request may have been sent.
    """
    url = method_url(base_url, method)
    mask = request_masker(base_url, params)
    try:
        async with session.post(
            url,
            json=params,
            timeout=client_timeout,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            allow_redirects=False,
        ) as response:
            status = response.status
            text = await response.text(errors="replace")
            location = response.headers.get("Location")
    except aiohttp.ConnectionTimeoutError as exc:
        raise TransportError(phase="connect", description=mask(f"connect timeout: {exc}")) from None
    except aiohttp.ClientConnectorError as exc:
        # refused, DNS failure, TLS handshake: the request never left this machine
        raise TransportError(phase="connect", description=mask(f"cannot connect: {exc}")) from None
    except TimeoutError as exc:
        raise TransportError(phase="sent", description=f"no answer in time: {type(exc).__name__}") from None
    except aiohttp.ClientError as exc:
        raise TransportError(
            phase="sent", description=mask(f"connection lost: {type(exc).__name__}: {exc}")
        ) from None
    if status in REDIRECT_STATUSES:
        redirect = accept_redirect(url, location)
        if redirect.origin is not None:
            raise PortalMoved(http_status=status, origin=redirect.origin)
        raise BitrixHttpError(
            http_status=status, body=mask(f"redirect to {location!r} not followed ({redirect.refused})")
        )
    return status, parse_body(status, text, mask=mask)


def request_masker(base_url: str, params: dict[str, Any]) -> Callable[[str], str]:
    """Masks what one request knows it sends: its webhook code, its access token (``auth``) and
    its ``TO_NUMBER`` in every spelling, exactly, besides everything masked by shape. A portal's
    error description that echoes them is stored and logged without them."""
    redactor = Redactor(
        [code for code in (webhook_code(base_url), params.get("auth")) if isinstance(code, str)]
    )
    number = params.get("TO_NUMBER")
    numbers = number_spellings(number) if isinstance(number, str) else ()
    return lambda text: redactor.text(text, numbers)


def parse_body(status: int, text: str, *, mask: Callable[[str], str] = redact_text) -> dict[str, Any]:
    """Parse a Bitrix24 answer; raise the matching error unless it carries a ``result``.

    Args:
        status: the HTTP status.
        text: the body.
        mask: masks numbers and secrets in what an error keeps of the answer.
    """
    try:
        body = json.loads(text)
    except ValueError:
        raise BitrixHttpError(http_status=status, body=mask(text)) from None
    if isinstance(body, dict) and "error" in body:
        raise BitrixApiError(
            http_status=status,
            code=mask(str(body["error"])),
            description=mask(str(body.get("error_description") or "")),
            body=mask(text)[:2000],
            operating=OperatingReading.of(body.get("time")),
        )
    if status != 200 or not isinstance(body, dict) or "result" not in body:
        raise BitrixHttpError(http_status=status, body=mask(text))
    return body


async def start_callback(
    session: aiohttp.ClientSession,
    base_url: str,
    *,
    from_line: str,
    to_number: str,
    text_to_pronounce: str,
    voice: str | None,
    access_token: str | None = None,
    client_timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
) -> CallbackStarted:
    """Call ``voximplant.callback.start`` once.

    ``base_url`` is a webhook URL, or an OAuth app's ``client_endpoint`` with ``access_token`` sent
    as ``auth`` in the JSON body.

    Returns:
        The CALL_ID (absent for REST-app lines) and the ``operating`` figure.
    """
    params: dict[str, Any] = {
        "FROM_LINE": from_line,
        "TO_NUMBER": to_number,
        "TEXT_TO_PRONOUNCE": text_to_pronounce,
    }
    if voice:
        params["VOICE"] = voice
    if access_token:
        params["auth"] = access_token
    status, body = await call_method(session, base_url, CALLBACK_START, params, client_timeout=client_timeout)
    result = body["result"]
    if not isinstance(result, dict) or result.get("RESULT") is not True:
        # The method answers RESULT: true when the callback started; anything else is a refusal.
        raise BitrixApiError(
            http_status=status,
            code=ErrorCode.CALLBACK_NOT_STARTED,
            description=request_masker(base_url, params)(f"unexpected result: {result!r}")[:300],
        )
    call_id = result.get("CALL_ID")
    return CallbackStarted(
        call_id=str(call_id) if call_id else None,
        http_status=status,
        operating=OperatingReading.of(body.get("time")),
    )
