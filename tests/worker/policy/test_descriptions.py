"""Outcome descriptions (OUTCOME_UNKNOWN, dead and expired errors) are well formed for every mix of
status, code and text. Pure."""

from __future__ import annotations

import pytest

from worker.bitrix.errors import BitrixApiError, BitrixCallError, BitrixHttpError, TransportError
from worker.policy.classify import error_of, unknown_result_description

BASE = "the request may have started the callback"


@pytest.mark.parametrize(
    ("http_status", "code", "description", "expected"),
    [
        (
            500,
            "INTERNAL_SERVER_ERROR",
            "Internal error",
            f"{BASE} (HTTP 500, INTERNAL_SERVER_ERROR: Internal error)",
        ),
        (500, "INTERNAL_SERVER_ERROR", None, f"{BASE} (HTTP 500, INTERNAL_SERVER_ERROR)"),
        (500, "INTERNAL_SERVER_ERROR", "", f"{BASE} (HTTP 500, INTERNAL_SERVER_ERROR)"),
        (
            502,
            None,
            "HTTP 502 without a Bitrix24 body: '<html>'",
            f"{BASE} (HTTP 502: HTTP 502 without a Bitrix24 body: '<html>')",
        ),
        (502, "", "  ", f"{BASE} (HTTP 502)"),
        (None, "ERROR_UNEXPECTED_ANSWER", "odd", f"{BASE} (ERROR_UNEXPECTED_ANSWER: odd)"),
        (None, "ERROR_UNEXPECTED_ANSWER", None, f"{BASE} (ERROR_UNEXPECTED_ANSWER)"),
        (
            None,
            None,
            "attempt 1 was interrupted (the worker stopped)",
            f"{BASE} (attempt 1 was interrupted (the worker stopped))",
        ),
        (None, None, "  read timeout  ", f"{BASE} (read timeout)"),
        (None, None, None, BASE),
        (0, " ", "", BASE),
    ],
)
def test_unknown_result_description(
    http_status: int | None, code: str | None, description: str | None, expected: str
) -> None:
    """Absent parts leave out their separators; no stray or doubled space, no empty brackets."""
    text = unknown_result_description(http_status, code, description)
    assert text == expected
    assert "  " not in text and "( " not in text and " )" not in text and "()" not in text


@pytest.mark.parametrize(
    ("error", "lead", "expected"),
    [
        (
            BitrixApiError(http_status=400, code="ERROR_CORE", description="Could not find line"),
            "",
            ("ERROR_CORE", "Could not find line (HTTP 400)"),
        ),
        (BitrixApiError(http_status=400, code="ERROR_CORE", description=""), "", ("ERROR_CORE", "HTTP 400")),
        (
            BitrixApiError(http_status=503, code="", description="busy"),
            "gave up after 5 attempts",
            ("BITRIX_ERROR", "gave up after 5 attempts: busy (HTTP 503)"),
        ),
        (BitrixHttpError(http_status=502, body=""), "", ("HTTP_502", "HTTP 502 without a Bitrix24 body: ''")),
        (
            TransportError(phase="connect", description="connection refused"),
            "gave up after 3 attempts",
            ("TRANSPORT_ERROR", "gave up after 3 attempts: connection refused"),
        ),
        (
            TransportError(phase="connect", description=" "),
            "gave up after 3 attempts",
            ("TRANSPORT_ERROR", "gave up after 3 attempts"),
        ),
        (BitrixCallError(""), "", ("TRANSPORT_ERROR", "")),
    ],
)
def test_error_of(error: BitrixCallError, lead: str, expected: tuple[str, str]) -> None:
    """An outcome's (code, description) for each error kind, with and without a lead; no stray space."""
    code, description = error_of(error, lead)
    assert (code, description) == expected
    assert "  " not in description and "()" not in description and not description.endswith(" ")
