"""The classification table: every code callq knows, what it does to the job and to the portal. Pure."""

from __future__ import annotations

import pytest

from worker.bitrix.codes import BitrixCode
from worker.bitrix.errors import BitrixApiError, BitrixCallError, BitrixHttpError, PortalMoved
from worker.policy.classify import BY_CODE, HaltTimes, Verdict, classify

TIMES = HaltTimes(credentials_s=60.0, refused_s=300.0, blocked_s=3600.0)

# code -> (verdict, attempt spent, portal halted for) ; a pause keeps the attempt and halts nothing
TABLE: dict[BitrixCode, tuple[Verdict, bool, float]] = {
    BitrixCode.QUERY_LIMIT_EXCEEDED: (Verdict.PAUSE_PORTAL, False, 0.0),
    BitrixCode.OAUTH_UNAVAILABLE: (Verdict.PAUSE_PORTAL, False, 0.0),
    BitrixCode.OPERATION_TIME_LIMIT: (Verdict.PAUSE_METHOD, False, 0.0),
    BitrixCode.EXPIRED_TOKEN: (Verdict.REFRESH_AUTH, False, 60.0),
    BitrixCode.NO_AUTH_FOUND: (Verdict.AUTH_BROKEN, False, 60.0),
    BitrixCode.INVALID_CREDENTIALS: (Verdict.AUTH_BROKEN, False, 60.0),
    BitrixCode.INVALID_TOKEN: (Verdict.AUTH_BROKEN, False, 60.0),
    BitrixCode.AUTHORIZATION_ERROR: (Verdict.AUTH_BROKEN, False, 60.0),
    BitrixCode.ERROR_OAUTH: (Verdict.AUTH_BROKEN, False, 60.0),
    BitrixCode.APPLICATION_NOT_FOUND: (Verdict.AUTH_BROKEN, False, 60.0),
    BitrixCode.INVALID_GRANT: (Verdict.AUTH_BROKEN, False, 60.0),
    BitrixCode.INVALID_CLIENT: (Verdict.AUTH_BROKEN, False, 60.0),
    BitrixCode.INVALID_SCOPE: (Verdict.AUTH_BROKEN, False, 60.0),
    BitrixCode.UNAUTHORIZED_CLIENT: (Verdict.AUTH_BROKEN, False, 60.0),
    BitrixCode.UNSUPPORTED_GRANT_TYPE: (Verdict.AUTH_BROKEN, False, 60.0),
    BitrixCode.INSUFFICIENT_SCOPE: (Verdict.PORTAL_REFUSED, False, 300.0),
    BitrixCode.ACCESS_DENIED: (Verdict.PORTAL_REFUSED, False, 300.0),
    BitrixCode.ERROR_METHOD_NOT_FOUND: (Verdict.PORTAL_REFUSED, False, 300.0),
    BitrixCode.WRONG_AUTH_TYPE: (Verdict.PORTAL_REFUSED, False, 300.0),
    BitrixCode.USER_ACCESS_ERROR: (Verdict.PORTAL_REFUSED, False, 300.0),
    BitrixCode.PAYMENT_REQUIRED: (Verdict.PORTAL_REFUSED, False, 300.0),
    BitrixCode.METHOD_CONFIRM_WAITING: (Verdict.PORTAL_REFUSED, False, 300.0),
    BitrixCode.METHOD_CONFIRM_DENIED: (Verdict.PORTAL_REFUSED, False, 300.0),
    BitrixCode.INVALID_REQUEST: (Verdict.PORTAL_REFUSED, False, 300.0),
    BitrixCode.OVERLOAD_LIMIT: (Verdict.BLOCKED, False, 3600.0),
    BitrixCode.PORTAL_DELETED: (Verdict.BLOCKED, False, 3600.0),
    BitrixCode.INTERNAL_SERVER_ERROR: (Verdict.UNKNOWN, True, 0.0),
    BitrixCode.ERROR_UNEXPECTED_ANSWER: (Verdict.UNKNOWN, True, 0.0),
    BitrixCode.ERROR_CORE: (Verdict.PERMANENT, True, 0.0),
    BitrixCode.CALLBACK_NOT_STARTED: (Verdict.PERMANENT, True, 0.0),
}


def test_the_table_covers_every_code() -> None:
    """Every code callq knows has a row here and in BY_CODE: a new code must be decided on purpose."""
    assert set(TABLE) == set(BitrixCode) == set(BY_CODE)


@pytest.mark.parametrize(("code", "row"), sorted(TABLE.items()), ids=[c.name for c in sorted(TABLE)])
@pytest.mark.parametrize("status", [400, 401, 403, 500, 503])
def test_each_code_decides_whatever_the_status(
    code: BitrixCode, row: tuple[Verdict, bool, float], status: int
) -> None:
    """A code decides the verdict, whether the attempt is spent and how long the portal halts, in any case."""
    verdict, spent, halt_s = row
    for spelling in (code.value, code.value.upper()):
        failure = classify(BitrixApiError(http_status=status, code=spelling, description="x"))
        assert (failure.verdict, failure.spends_attempt, failure.halt_s(TIMES)) == (verdict, spent, halt_s)
        assert failure.halts_portal == (halt_s > 0)
        assert failure.pauses_portal == (verdict in (Verdict.PAUSE_PORTAL, Verdict.PAUSE_METHOD))


@pytest.mark.parametrize(
    ("error", "verdict", "spent"),
    [
        (BitrixApiError(http_status=403, code="SOMETHING_NEW", description=""), Verdict.PERMANENT, True),
        (PortalMoved(http_status=302, origin="https://new.bitrix24.ru"), Verdict.RETRY, True),
        (BitrixHttpError(http_status=302, body="redirect not followed"), Verdict.UNKNOWN, True),
        (BitrixHttpError(http_status=301, body=""), Verdict.UNKNOWN, True),
        (BitrixCallError("anything"), Verdict.UNKNOWN, True),
    ],
)
def test_answers_without_a_known_code(error: BitrixCallError, verdict: Verdict, spent: bool) -> None:
    """An unknown code is the job's (dead, logged); a move not followed within the attempt is retried; a
    redirect that is not a move is an unknown result."""
    failure = classify(error)
    assert (failure.verdict, failure.spends_attempt, failure.halts_portal) == (verdict, spent, False)


@pytest.mark.parametrize(
    ("status", "verdict", "halts"),
    [
        (403, Verdict.PORTAL_REFUSED, True),
        (401, Verdict.PORTAL_REFUSED, True),
        (429, Verdict.PAUSE_PORTAL, False),
    ],
)
def test_a_refusal_in_front_of_the_portal_costs_no_job(status: int, verdict: Verdict, halts: bool) -> None:
    """An HTML 401/403 (a firewall) halts the portal and a 429 (a proxy's rate limit) pauses it: no
    attempt spent, so a queue is not drained into dead letters one job at a time."""
    failure = classify(BitrixHttpError(http_status=status, body="<html>refused</html>"))
    assert (failure.verdict, failure.spends_attempt, failure.halts_portal) == (verdict, False, halts)
    assert failure.outcome_error()[0] == f"HTTP_{status}"


def test_a_moved_portal_error_names_only_the_origin() -> None:
    """The error of a move carries the new origin and a description without any path (no webhook code)."""
    error = PortalMoved(http_status=302, origin="https://new.bitrix24.ru")
    assert error.description == "HTTP 302: the portal moved to https://new.bitrix24.ru"
    assert classify(error).outcome_error() == (
        "HTTP_302",
        "HTTP 302: the portal moved to https://new.bitrix24.ru",
    )
