"""The error codes callq itself puts in an outcome's ``error.code`` (contract §5).

Where Bitrix24 answered with an error code, the outcome carries that code as Bitrix24 sent it (the
ones callq knows are :class:`worker.bitrix.codes.BitrixCode`); every other code is one of these.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """callq's own error codes."""

    INVALID_JOB = "INVALID_JOB"
    """The input could not become a job (``rejected``; ``error.fields`` says why)."""
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    """A known idempotency key came with a different request (``rejected``)."""
    DEADLINE_PASSED = "DEADLINE_PASSED"
    """The job could not start before its deadline (``expired``)."""
    CANCELLED = "CANCELLED"
    """Cancelled before it started (``cancelled``)."""
    OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
    """A request that may have started the callback ended without a usable answer (``dead``)."""
    MAX_ATTEMPTS = "MAX_ATTEMPTS"
    """Retries used up (kept for records written by 0.1; the last error's code is used now)."""
    PORTAL_NOT_CONFIGURED = "PORTAL_NOT_CONFIGURED"
    """The job's portal is no longer in the configuration (``dead``)."""
    BITRIX_ERROR = "BITRIX_ERROR"
    """Bitrix24 answered with an error body without a code."""
    TRANSPORT_ERROR = "TRANSPORT_ERROR"
    """No answer: the connection failed (never sent) or broke (maybe sent)."""
    OAUTH_UNAVAILABLE = "OAUTH_UNAVAILABLE"
    """The OAuth token endpoint could not be reached; nothing was sent."""
    CALLBACK_NOT_STARTED = "CALLBACK_NOT_STARTED"
    """Bitrix24 answered, but its result does not say the callback started (``RESULT`` not true)."""


HTTP_CODE_PREFIX = "HTTP_"
"""The family of codes for an answer that is not Bitrix24's (a proxy's 502 page, say): ``HTTP_<status>``."""


def http_error_code(status: int) -> str:
    """The code of an answer with HTTP ``status`` and no Bitrix24 body, e.g. ``HTTP_502``."""
    return f"{HTTP_CODE_PREFIX}{status}"
