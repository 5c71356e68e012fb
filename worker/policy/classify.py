"""What a failed ``voximplant.callback.start`` means: classified once, into one value. Pure.

The method has no idempotency key, so the only failures that may be repeated are the ones
Bitrix24 refused before executing anything, or that never left this machine. :func:`classify` turns
what :mod:`worker.bitrix.client` raised into a :class:`Failure` that carries everything that
follows from it: the verdict (the action), whether it spends an attempt, what it does to the portal,
the outcome's error code and description. :mod:`worker.jobs.failures` is the one module that acts
on it.

A refusal that says the *portal* is wrong (its credentials, scopes, permissions, plan, a manual
block) halts the portal for every worker instead: every other job would be refused the same way, so
none spends an attempt or dies for it. A refusal that concerns this job (its line, its number) ends
the job. The reason for each code is in ``docs/portals.md``.

===========================  ==============  =======  ========================================
failure                      verdict         attempt  what follows
===========================  ==============  =======  ========================================
QUERY_LIMIT_EXCEEDED         pause_portal    kept     the portal pauses (1 s doubling to 60 s)
OPERATION_TIME_LIMIT         pause_method    kept     callbacks pause until ``operating_reset_at``
refused credentials          auth_broken     kept     the portal halts (60 s, then one probe)
expired_token (webhook)      refresh_auth    kept     as refused credentials
scope, permission, plan      portal_refused  kept     the portal halts (5 min, then one probe)
OVERLOAD_LIMIT, deleted      blocked         kept     the portal halts (1 h; ``callq resume``)
HTTP 429 without JSON        pause_portal    kept     as QUERY_LIMIT_EXCEEDED (a proxy's rate limit)
HTTP 401/403/404 no JSON     portal_refused  kept     the portal halts (a firewall, a wrong address)
connect failure, moved       retry           spent    backoff, until ``max_attempts``
5xx, timeout, reset          unknown         spent    ``OUTCOME_UNKNOWN`` unless ``retry_unknown``
line, number, anything else  permanent       spent    ``dead`` at once
===========================  ==============  =======  ========================================

An answer that is not Bitrix24's JSON came from something in front of the portal (a firewall, a
proxy, a web server that does not know the path): a 4xx from it refused the request before Bitrix24
saw it, and says nothing about this job. A 429 is a rate limit: the portal pauses. A 401, 403 or
404 refuses every job alike (a firewall rule, an address that is wrong): the portal halts, so the
queue is not drained into dead letters one job at a time. Other 4xx (400, 413, ...) may concern
this request: permanent. 3xx and 5xx stay unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas.wire.codes import ErrorCode, http_error_code
from worker.bitrix.codes import BitrixCode
from worker.bitrix.errors import (
    BitrixApiError,
    BitrixCallError,
    BitrixHttpError,
    PortalMoved,
    TransportError,
)


class Verdict(StrEnum):
    """What to do with a failed attempt (also the ``result`` label of ``callq_attempts_total``)."""

    RETRY = "retry"  # refused before execution: safe to repeat, with backoff, spends an attempt
    PAUSE_PORTAL = "pause_portal"  # the portal is rate-limited as a whole: back off, attempt not spent
    PAUSE_METHOD = "pause_method"  # OPERATION_TIME_LIMIT: this method is blocked for a while
    REFRESH_AUTH = "refresh_auth"  # an access token expired that could not be refreshed: as AUTH_BROKEN
    AUTH_BROKEN = "auth_broken"  # wrong credentials: halt the portal, say so loudly
    PORTAL_REFUSED = "portal_refused"  # the portal lacks a scope, permission, plan or method: halt it
    BLOCKED = "blocked"  # OVERLOAD_LIMIT, a deleted portal: only a person lifts it; halt and alert
    PERMANENT = "permanent"  # will fail the same way again: dead at once
    UNKNOWN = "unknown"  # the request may have executed: never re-sent blindly


BY_CODE: dict[BitrixCode, Verdict] = {
    BitrixCode.QUERY_LIMIT_EXCEEDED: Verdict.PAUSE_PORTAL,
    BitrixCode.OAUTH_UNAVAILABLE: Verdict.PAUSE_PORTAL,  # the token endpoint is down: nothing was sent
    BitrixCode.OPERATION_TIME_LIMIT: Verdict.PAUSE_METHOD,
    BitrixCode.EXPIRED_TOKEN: Verdict.REFRESH_AUTH,
    # the credentials themselves: a wrong or deleted webhook, an app whose tokens are refused
    BitrixCode.NO_AUTH_FOUND: Verdict.AUTH_BROKEN,
    BitrixCode.INVALID_CREDENTIALS: Verdict.AUTH_BROKEN,
    BitrixCode.INVALID_TOKEN: Verdict.AUTH_BROKEN,
    BitrixCode.AUTHORIZATION_ERROR: Verdict.AUTH_BROKEN,
    BitrixCode.ERROR_OAUTH: Verdict.AUTH_BROKEN,
    BitrixCode.APPLICATION_NOT_FOUND: Verdict.AUTH_BROKEN,
    BitrixCode.INVALID_GRANT: Verdict.AUTH_BROKEN,
    BitrixCode.INVALID_CLIENT: Verdict.AUTH_BROKEN,
    BitrixCode.INVALID_SCOPE: Verdict.AUTH_BROKEN,  # the token endpoint's refusals: re-authorize the app
    BitrixCode.UNAUTHORIZED_CLIENT: Verdict.AUTH_BROKEN,
    BitrixCode.UNSUPPORTED_GRANT_TYPE: Verdict.AUTH_BROKEN,
    # what the credentials may do on this portal: every job would be refused alike
    BitrixCode.INSUFFICIENT_SCOPE: Verdict.PORTAL_REFUSED,
    BitrixCode.ACCESS_DENIED: Verdict.PORTAL_REFUSED,
    BitrixCode.ERROR_METHOD_NOT_FOUND: Verdict.PORTAL_REFUSED,
    BitrixCode.WRONG_AUTH_TYPE: Verdict.PORTAL_REFUSED,
    BitrixCode.USER_ACCESS_ERROR: Verdict.PORTAL_REFUSED,
    BitrixCode.PAYMENT_REQUIRED: Verdict.PORTAL_REFUSED,
    BitrixCode.METHOD_CONFIRM_WAITING: Verdict.PORTAL_REFUSED,
    BitrixCode.METHOD_CONFIRM_DENIED: Verdict.PORTAL_REFUSED,
    BitrixCode.INVALID_REQUEST: Verdict.PORTAL_REFUSED,  # "Https required": the portal's address
    BitrixCode.OVERLOAD_LIMIT: Verdict.BLOCKED,
    BitrixCode.PORTAL_DELETED: Verdict.BLOCKED,
    BitrixCode.INTERNAL_SERVER_ERROR: Verdict.UNKNOWN,
    BitrixCode.ERROR_UNEXPECTED_ANSWER: Verdict.UNKNOWN,
    # this job's line or number ("Could not find line", "Phone number is not correct"): other
    # lines and numbers of the portal still work
    BitrixCode.ERROR_CORE: Verdict.PERMANENT,
    BitrixCode.CALLBACK_NOT_STARTED: Verdict.PERMANENT,
}
"""Every Bitrix24 code callq knows, and what it means; a code not here is permanent."""

FRONT_REFUSALS: dict[int, Verdict] = {
    429: Verdict.PAUSE_PORTAL,
    401: Verdict.PORTAL_REFUSED,
    403: Verdict.PORTAL_REFUSED,
    404: Verdict.PORTAL_REFUSED,
}
"""An HTTP 4xx without a Bitrix24 body, by status: refused in front of the portal, for every job alike."""

PORTAL_PAUSES = frozenset({Verdict.PAUSE_PORTAL, Verdict.PAUSE_METHOD})
PORTAL_HALTS = frozenset({Verdict.AUTH_BROKEN, Verdict.REFRESH_AUTH, Verdict.PORTAL_REFUSED, Verdict.BLOCKED})
NOT_SPENT = PORTAL_PAUSES | PORTAL_HALTS
"""A refusal that concerns the whole portal costs the job no attempt."""

UNKNOWN_RESULT = "the request may have started the callback"


@dataclass(frozen=True)
class HaltTimes:
    """How long a portal halts before one job probes it again, by kind of refusal.

    Attributes:
        credentials_s: refused credentials (a webhook deleted or mistyped, an app's tokens refused):
            fixed by a configuration change or by re-enabling the webhook; probed every minute.
        refused_s: a scope, permission, plan or method the portal lacks: fixed by a person in
            Bitrix24's settings; probed every 5 minutes (12 requests an hour), ``callq resume`` at once.
        blocked_s: ``OVERLOAD_LIMIT`` (only Bitrix24 support lifts it) or a deleted portal: an hour.
    """

    credentials_s: float = 60.0
    refused_s: float = 300.0
    blocked_s: float = 3600.0


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
        """The portal is refused as a whole (credentials, scope, permission, a block): it halts for
        every worker."""
        return self.verdict in PORTAL_HALTS

    def halt_s(self, times: HaltTimes) -> float:
        """How long the portal halts for this failure before a job probes it again (0: no halt)."""
        if self.verdict in (Verdict.AUTH_BROKEN, Verdict.REFRESH_AUTH):
            return times.credentials_s
        if self.verdict is Verdict.PORTAL_REFUSED:
            return times.refused_s
        if self.verdict is Verdict.BLOCKED:
            return times.blocked_s
        return 0.0

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
        the caller); an answer without a Bitrix24 body is unknown when 5xx or 3xx (a redirect that
        was not followed), permanent when 4xx.
    """
    if isinstance(error, TransportError):
        return Failure(Verdict.RETRY if error.phase == "connect" else Verdict.UNKNOWN, error)
    if isinstance(error, PortalMoved):
        # a redirect is answered before anything runs; a second one within an attempt is retried later
        return Failure(Verdict.RETRY, error)
    if isinstance(error, BitrixApiError):
        code = BitrixCode.of(error.code)
        return Failure(BY_CODE[code], error) if code else Failure(Verdict.PERMANENT, error, recognised=False)
    if isinstance(error, BitrixHttpError):
        status = error.http_status or 0
        if status >= 500 or status < 400:
            return Failure(Verdict.UNKNOWN, error)
        return Failure(FRONT_REFUSALS.get(status, Verdict.PERMANENT), error)
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
