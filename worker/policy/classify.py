"""What a failed ``voximplant.callback.start`` means: classified once, into one value. Pure.

The method has no idempotency key, so the only failures that may be repeated are the ones
Bitrix24 refused before executing anything, or that never left this machine. :func:`classify` turns
what :mod:`worker.bitrix.client` raised into a :class:`Failure` that carries everything that
follows from it: the verdict (the action), whether it spends an attempt, what it does to the portal,
the outcome's error code and description. :mod:`worker.jobs.failures` is the one module that acts
on it.

=========================  =============  =======  ========================================
failure                    verdict        attempt  what follows
=========================  =============  =======  ========================================
QUERY_LIMIT_EXCEEDED       pause_portal   kept     the portal pauses (1 s doubling to 60 s)
OPERATION_TIME_LIMIT       pause_method   kept     the portal's callbacks pause (≥ 60 s)
OVERLOAD_LIMIT             blocked        kept     the portal halts (1 h; ``callq resume``)
refused credentials        auth_broken    kept     the portal halts (60 s, then one probe)
expired_token (webhook)    refresh_auth   kept     as refused credentials
connect failure            retry          spent    backoff, until ``max_attempts``
5xx, timeout, reset        unknown        spent    ``OUTCOME_UNKNOWN`` unless ``retry_unknown``
anything else              permanent      spent    ``dead`` at once
=========================  =============  =======  ========================================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas.wire.codes import ErrorCode, http_error_code
from worker.bitrix.codes import BitrixCode
from worker.bitrix.errors import BitrixApiError, BitrixCallError, BitrixHttpError, TransportError


class Verdict(StrEnum):
    """What to do with a failed attempt (also the ``result`` label of ``callq_attempts_total``)."""

    RETRY = "retry"  # refused before execution: safe to repeat, with backoff, spends an attempt
    PAUSE_PORTAL = "pause_portal"  # the portal is rate-limited as a whole: back off, attempt not spent
    PAUSE_METHOD = "pause_method"  # OPERATION_TIME_LIMIT: this method is blocked for a while
    REFRESH_AUTH = "refresh_auth"  # an access token expired that could not be refreshed: as AUTH_BROKEN
    AUTH_BROKEN = "auth_broken"  # wrong credentials: halt the portal, say so loudly
    BLOCKED = "blocked"  # OVERLOAD_LIMIT: manual block, halt and alert, no timer retries
    PERMANENT = "permanent"  # will fail the same way again: dead at once
    UNKNOWN = "unknown"  # the request may have executed: never re-sent blindly


BY_CODE: dict[BitrixCode, Verdict] = {
    BitrixCode.QUERY_LIMIT_EXCEEDED: Verdict.PAUSE_PORTAL,
    BitrixCode.OAUTH_UNAVAILABLE: Verdict.PAUSE_PORTAL,  # the token endpoint is down: nothing was sent
    BitrixCode.OPERATION_TIME_LIMIT: Verdict.PAUSE_METHOD,
    BitrixCode.EXPIRED_TOKEN: Verdict.REFRESH_AUTH,
    BitrixCode.OVERLOAD_LIMIT: Verdict.BLOCKED,
    BitrixCode.NO_AUTH_FOUND: Verdict.AUTH_BROKEN,
    BitrixCode.INVALID_TOKEN: Verdict.AUTH_BROKEN,
    BitrixCode.INVALID_CREDENTIALS: Verdict.AUTH_BROKEN,
    BitrixCode.INSUFFICIENT_SCOPE: Verdict.AUTH_BROKEN,
    BitrixCode.AUTHORIZATION_ERROR: Verdict.AUTH_BROKEN,
    BitrixCode.PORTAL_DELETED: Verdict.AUTH_BROKEN,
    BitrixCode.WRONG_AUTH_TYPE: Verdict.AUTH_BROKEN,
    BitrixCode.USER_ACCESS_ERROR: Verdict.AUTH_BROKEN,
    BitrixCode.ERROR_OAUTH: Verdict.AUTH_BROKEN,
    BitrixCode.APPLICATION_NOT_FOUND: Verdict.AUTH_BROKEN,
    BitrixCode.PAYMENT_REQUIRED: Verdict.AUTH_BROKEN,
    BitrixCode.INVALID_GRANT: Verdict.AUTH_BROKEN,
    BitrixCode.INVALID_CLIENT: Verdict.AUTH_BROKEN,
    BitrixCode.INTERNAL_SERVER_ERROR: Verdict.UNKNOWN,
    BitrixCode.ERROR_UNEXPECTED_ANSWER: Verdict.UNKNOWN,
    BitrixCode.ERROR_CORE: Verdict.PERMANENT,
    BitrixCode.ACCESS_DENIED: Verdict.PERMANENT,
    BitrixCode.ERROR_METHOD_NOT_FOUND: Verdict.PERMANENT,
    BitrixCode.INVALID_REQUEST: Verdict.PERMANENT,
    BitrixCode.CALLBACK_NOT_STARTED: Verdict.PERMANENT,
}
"""Every Bitrix24 code callq knows, and what it means; a code not here is permanent."""

PORTAL_PAUSES = frozenset({Verdict.PAUSE_PORTAL, Verdict.PAUSE_METHOD})
PORTAL_HALTS = frozenset({Verdict.AUTH_BROKEN, Verdict.REFRESH_AUTH, Verdict.BLOCKED})
NOT_SPENT = PORTAL_PAUSES | PORTAL_HALTS
"""A refusal that concerns the whole portal costs the job no attempt."""

UNKNOWN_RESULT = "the request may have started the callback"


@dataclass(frozen=True)
class Failure:
    """A failed attempt, classified once.

    Attributes:
        verdict: what to do (see the module's table).
        error: what :mod:`worker.bitrix.client` raised.
        recognised: the Bitrix24 code is one callq knows (an unknown one is logged in full).
    """

    verdict: Verdict
    error: BitrixCallError
    recognised: bool = True

    @property
    def spends_attempt(self) -> bool:
        """Whether the attempt counts against ``max_attempts``."""
        return self.verdict not in NOT_SPENT

    @property
    def pauses_portal(self) -> bool:
        """A rate refusal: every worker pauses the portal."""
        return self.verdict in PORTAL_PAUSES

    @property
    def halts_portal(self) -> bool:
        """Credentials refused, or a manual block: the portal halts for every worker."""
        return self.verdict in PORTAL_HALTS

    def outcome_error(self, lead: str = "") -> tuple[str, str]:
        """The (code, description) an outcome stores for it, the description after ``lead: ``."""
        return error_of(self.error, lead)

    def unknown_description(self) -> str:
        """The ``OUTCOME_UNKNOWN`` description (a request that may have started the callback)."""
        error = self.error
        return unknown_result_description(error.http_status, error.code, error.description)


def classify(error: BitrixCallError) -> Failure:
    """Classify a failed call. Codes compare case-insensitively; the code wins over the status.

    Args:
        error: what :mod:`worker.bitrix.client` raised.

    Returns:
        The failure. Unrecognised Bitrix24 codes are permanent (logged with their full body by
        the caller); an answer without a Bitrix24 body is unknown when 5xx, permanent when 4xx.
    """
    if isinstance(error, TransportError):
        return Failure(Verdict.RETRY if error.phase == "connect" else Verdict.UNKNOWN, error)
    if isinstance(error, BitrixApiError):
        code = BitrixCode.of(error.code)
        return Failure(BY_CODE[code], error) if code else Failure(Verdict.PERMANENT, error, recognised=False)
    if isinstance(error, BitrixHttpError):
        status = error.http_status or 0
        return Failure(Verdict.UNKNOWN if status >= 500 or status < 400 else Verdict.PERMANENT, error)
    return Failure(Verdict.UNKNOWN, error)


def error_of(error: BitrixCallError, lead: str = "") -> tuple[str, str]:
    """The (code, description) an outcome stores for ``error``; the description after ``lead: ``.

    A part that is blank is left out with its separator: never a doubled space or an empty ``()``.
    """
    text = error.description.strip()
    code: str
    if isinstance(error, BitrixApiError):
        code = (error.code or "").strip() or ErrorCode.BITRIX_ERROR
        status = f"HTTP {error.http_status}"
        text = f"{text} ({status})" if text else status
    elif isinstance(error, BitrixHttpError):
        code = http_error_code(error.http_status or 0)
    else:
        code = ErrorCode.TRANSPORT_ERROR
    lead = lead.strip()
    return code, f"{lead}: {text}" if lead and text else lead or text


def unknown_result_description(http_status: int | None, code: str | None, description: str | None) -> str:
    """The ``OUTCOME_UNKNOWN`` description: what is known of the answer, in brackets.

    ``(HTTP 500, INTERNAL_SERVER_ERROR: text)``; each part that is absent (or blank) is left out
    with its separator, and the brackets too when nothing is known.
    """
    known = [f"HTTP {http_status}" if http_status else "", (code or "").strip()]
    head = ", ".join(part for part in known if part)
    text = (description or "").strip()
    detail = f"{head}: {text}" if head and text else head or text
    return f"{UNKNOWN_RESULT} ({detail})" if detail else UNKNOWN_RESULT
