"""Error classification: which failures may be repeated. Pure, no Redis."""

from __future__ import annotations

import pytest

from worker.bitrix.errors import BitrixApiError, BitrixCallError, BitrixHttpError, TransportError
from worker.policy.classify import Verdict, classify


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (
            BitrixApiError(http_status=503, code="QUERY_LIMIT_EXCEEDED", description="Too many requests"),
            Verdict.PAUSE_PORTAL,
        ),
        (BitrixApiError(http_status=503, code="query_limit_exceeded", description=""), Verdict.PAUSE_PORTAL),
        (BitrixApiError(http_status=429, code="OPERATION_TIME_LIMIT", description=""), Verdict.PAUSE_METHOD),
        (BitrixApiError(http_status=503, code="OVERLOAD_LIMIT", description=""), Verdict.BLOCKED),
        (BitrixApiError(http_status=401, code="expired_token", description=""), Verdict.REFRESH_AUTH),
        (BitrixApiError(http_status=401, code="NO_AUTH_FOUND", description=""), Verdict.AUTH_BROKEN),
        (BitrixApiError(http_status=401, code="invalid_token", description=""), Verdict.AUTH_BROKEN),
        (BitrixApiError(http_status=403, code="INVALID_CREDENTIALS", description=""), Verdict.AUTH_BROKEN),
        (BitrixApiError(http_status=403, code="insufficient_scope", description=""), Verdict.PORTAL_REFUSED),
        (BitrixApiError(http_status=500, code="PORTAL_DELETED", description=""), Verdict.BLOCKED),
        (
            BitrixApiError(http_status=400, code="ERROR_CORE", description="Could not find line x"),
            Verdict.PERMANENT,
        ),
        (BitrixApiError(http_status=403, code="ACCESS_DENIED", description=""), Verdict.PORTAL_REFUSED),
        (
            BitrixApiError(http_status=404, code="ERROR_METHOD_NOT_FOUND", description=""),
            Verdict.PORTAL_REFUSED,
        ),
        (BitrixApiError(http_status=400, code="SOMETHING_NEW", description=""), Verdict.PERMANENT),
        (BitrixApiError(http_status=500, code="INTERNAL_SERVER_ERROR", description=""), Verdict.UNKNOWN),
        (BitrixApiError(http_status=500, code="ERROR_UNEXPECTED_ANSWER", description=""), Verdict.UNKNOWN),
        (BitrixHttpError(http_status=502, body="<html>Bad gateway</html>"), Verdict.UNKNOWN),
        (BitrixHttpError(http_status=504, body=""), Verdict.UNKNOWN),
        (BitrixHttpError(http_status=200, body="not json"), Verdict.UNKNOWN),
        # a 4xx from in front of the portal: every job alike (a firewall, a proxy's rate limit, a
        # wrong address), except the statuses that may concern this request
        (BitrixHttpError(http_status=404, body="<html>no</html>"), Verdict.PORTAL_REFUSED),
        (BitrixHttpError(http_status=401, body="<html>login</html>"), Verdict.PORTAL_REFUSED),
        (BitrixHttpError(http_status=429, body="<html>Too Many Requests</html>"), Verdict.PAUSE_PORTAL),
        (BitrixHttpError(http_status=400, body="<html>Bad Request</html>"), Verdict.PERMANENT),
        (BitrixHttpError(http_status=413, body=""), Verdict.PERMANENT),
        (TransportError(phase="connect", description="refused"), Verdict.RETRY),
        (TransportError(phase="sent", description="read timeout"), Verdict.UNKNOWN),
        (BitrixCallError("something else"), Verdict.UNKNOWN),
    ],
)
def test_classify(error: BitrixCallError, verdict: Verdict) -> None:
    """Codes decide (case-insensitively) before statuses; only refusals before execution are retried."""
    assert classify(error).verdict == verdict
