"""Error classification: what a failed ``voximplant.callback.start`` means for the job. Pure.

The method has no idempotency key, so the only failures that may be repeated are the ones
Bitrix24 refused before executing anything, or that never left this machine.
"""

from __future__ import annotations

from enum import StrEnum

from worker.bitrix.errors import BitrixApiError, BitrixCallError, BitrixHttpError, TransportError


class Verdict(StrEnum):
    """What to do with a failed attempt."""

    RETRY = "retry"  # refused before execution: safe to repeat, with backoff, spends an attempt
    PAUSE_PORTAL = "pause_portal"  # the portal is rate-limited as a whole: back off, attempt not spent
    PAUSE_METHOD = "pause_method"  # OPERATION_TIME_LIMIT: this method is blocked for a while
    REFRESH_AUTH = "refresh_auth"  # OAuth token expired: refresh and repeat
    AUTH_BROKEN = "auth_broken"  # wrong credentials: pause the portal, say so loudly
    BLOCKED = "blocked"  # OVERLOAD_LIMIT: manual block, pause and alert, no timer retries
    PERMANENT = "permanent"  # will fail the same way again: dead at once
    UNKNOWN = "unknown"  # the request may have executed: never re-sent blindly


RATE_LIMIT_CODES = frozenset({"query_limit_exceeded", "oauth_unavailable"})  # the latter: token endpoint down
METHOD_LIMIT_CODES = frozenset({"operation_time_limit"})
EXPIRED_TOKEN_CODES = frozenset({"expired_token"})
BLOCKED_CODES = frozenset({"overload_limit"})
AUTH_CODES = frozenset(
    {
        "no_auth_found",
        "invalid_token",
        "invalid_credentials",
        "insufficient_scope",
        "authorization_error",
        "portal_deleted",
        "wrong_auth_type",
        "user_access_error",
        "error_oauth",
        "application_not_found",
        "payment_required",
        "invalid_grant",
        "invalid_client",
    }
)
UNKNOWN_RESULT_CODES = frozenset({"internal_server_error", "error_unexpected_answer"})
KNOWN_PERMANENT_CODES = frozenset(
    {"error_core", "access_denied", "error_method_not_found", "invalid_request", "callback_not_started"}
)


def is_recognised(code: str | None) -> bool:
    """Whether callq knows this Bitrix24 error code (unknown ones are permanent and logged in full)."""
    known = (RATE_LIMIT_CODES | METHOD_LIMIT_CODES | EXPIRED_TOKEN_CODES | BLOCKED_CODES | AUTH_CODES
             | UNKNOWN_RESULT_CODES | KNOWN_PERMANENT_CODES)  # fmt: skip
    return (code or "").lower() in known


def classify(error: BitrixCallError) -> Verdict:
    """Classify a failed call. Codes compare case-insensitively; the code wins over the status.

    Args:
        error: what :mod:`worker.bitrix.client` raised.

    Returns:
        The verdict. Unrecognised Bitrix24 codes are permanent (logged with their full body by
        the caller); an answer without a Bitrix24 body is unknown when 5xx, permanent when 4xx.
    """
    if isinstance(error, TransportError):
        return Verdict.RETRY if error.phase == "connect" else Verdict.UNKNOWN
    if isinstance(error, BitrixApiError):
        code = (error.code or "").lower()
        if code in RATE_LIMIT_CODES:
            return Verdict.PAUSE_PORTAL
        if code in METHOD_LIMIT_CODES:
            return Verdict.PAUSE_METHOD
        if code in EXPIRED_TOKEN_CODES:
            return Verdict.REFRESH_AUTH
        if code in BLOCKED_CODES:
            return Verdict.BLOCKED
        if code in AUTH_CODES:
            return Verdict.AUTH_BROKEN
        if code in UNKNOWN_RESULT_CODES:
            return Verdict.UNKNOWN
        return Verdict.PERMANENT
    if isinstance(error, BitrixHttpError):
        status = error.http_status or 0
        return Verdict.UNKNOWN if status >= 500 or status < 400 else Verdict.PERMANENT
    return Verdict.UNKNOWN
