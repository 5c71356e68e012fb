"""Text from outside is masked where it enters callq's data: Bitrix24 errors, stored outcomes and attempts. Pure."""

from __future__ import annotations

import json

import pytest

from schemas.states import Status
from schemas.wire.job import CallbackJob
from schemas.wire.outcome import Outcome, OutcomeError, stored_attempt_entry, stored_outcome
from worker.bitrix.client import parse_body, request_masker
from worker.bitrix.errors import AuthRefused, BitrixApiError, BitrixCallError, BitrixHttpError, TransportError

BASE = "https://acme.bitrix24.ru/rest/1/wHk5ecretC0de77/"
PARAMS = {
    "TO_NUMBER": "+3725123456",
    "auth": "acc3ssT0kenValue",
}  # a 7-digit national number: too short for shapes


def test_a_portal_echo_of_the_request_is_masked_exactly() -> None:
    """The request's own webhook code, access token and number are masked in the error it gets back."""
    body = {
        "error": "ERROR_CORE",
        "error_description": "5123456 (+3725123456) for acc3ssT0kenValue at wHk5ecretC0de77",
    }
    with pytest.raises(BitrixApiError) as caught:
        parse_body(400, json.dumps(body), mask=request_masker(BASE, PARAMS))
    error = caught.value
    for shown in (error.description, error.body, str(error)):
        assert "5123456" not in shown and "acc3ssT0kenValue" not in shown and "wHk5ecretC0de77" not in shown
    assert error.code == "ERROR_CORE" and error.description.startswith("5***6 (")


@pytest.mark.parametrize(
    "error",
    [
        BitrixCallError("Phone number +79111234567 is not correct"),
        BitrixApiError(
            http_status=400, code="ERROR_CORE", description="+79111234567", body='{"x":"+79111234567"}'
        ),
        BitrixHttpError(
            http_status=502, body="<html>" + "x" * 290 + " +79111234567 at /rest/1/s3cr3t/</html>"
        ),
        TransportError(
            phase="sent", description="connection lost: https://a.bitrix24.ru/rest/1/s3cr3t/x?auth=t0k"
        ),
        AuthRefused(portal="acme", code="invalid_grant", description="refresh_token=rt0ken for 89111234567"),
    ],
)
def test_errors_are_masked_however_they_are_built(error: Exception) -> None:
    """Every error of callq's tree masks numbers and secrets as it is built, a cut-short body too."""
    shown = json.dumps([str(error), vars(error)], default=str)
    for secret in ("9111234567", "s3cr3t", "t0k", "rt0ken"):
        assert secret not in shown


def test_stored_outcomes_and_attempt_entries_are_masked_with_the_jobs_number() -> None:
    """The last guard before Redis masks an outcome's error and an attempt's description, the job's short number too."""
    job = CallbackJob(
        job_id="j",
        portal="acme",
        from_line="reg1332",
        to_number="+3725123456",
        text_to_pronounce="Hi",
        created_at="2026-11-30T10:00:00Z",
    )
    error = OutcomeError(
        code="ERROR_CORE",
        description="Phone number 5123456 is not correct",
        fields=[{"field": "89111234567", "message": "unknown field"}],
    )
    outcome = Outcome(
        job_id="j",
        status=Status.DEAD,
        portal="acme",
        from_line="reg1332",
        idempotency_key="k",
        metadata={"lead": "+79111234567"},
        attempts=1,
        finished_at="2026-11-30T10:00:00+00:00",
        error=error,
    )
    stored = stored_outcome(outcome, job).to_json()
    assert "5123456" not in stored and "89111234567" not in stored
    assert '"metadata":{"lead":"+79111234567"}' in stored, "the producer's metadata is echoed as sent"
    entry = {"started_at": "2026-11-30T10:00:00+00:00", "code": "X", "description": "call to 5123456 failed"}
    assert stored_attempt_entry(entry, job)["description"] == "call to 5***6 failed"
    success = {
        "started_at": "2026-11-30T10:00:00+00:00",
        "http_status": 200,
        "call_id": "callback.ab.1795287427",
    }
    assert stored_attempt_entry(success, job) is success
