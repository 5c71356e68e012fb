"""Validation of raw input: decoding, sizes, normalisation. Pure, no Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from producers.validation import MAX_ENTRY_BYTES, Invalid, Valid, validate_job
from schemas.config import PortalConfig, Settings

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ALWAYS = MappingProxyType({day: ((0, 1440),) for day in range(7)})
SETTINGS = Settings(portals=MappingProxyType({"default": PortalConfig(
    name="default", webhook_url="https://a.bitrix24.ru/rest/1/x/", default_region="RU", hours=ALWAYS)}))  # fmt: skip


@pytest.mark.parametrize(
    ("number", "e164"),
    [("8 (911) 123-45-67", "+79111234567"), ("+7 911 123 45 67", "+79111234567"), ("89111234567", "+79111234567"),
     ("+49 30 1234567", "+49301234567"), ("+1 (212) 555-0123", "+12125550123")],
)  # fmt: skip
def test_numbers_become_e164(number: str, e164: str) -> None:
    """Every spelling of a number in the portal's region, or with +code, becomes E.164."""
    result = validate_job({"from_line": "l", "to_number": number, "text_to_pronounce": "t"},
                          settings=SETTINGS, now=NOW, job_id="j")  # fmt: skip
    assert isinstance(result, Valid) and result.job.to_number == e164


def test_oversized_entry_is_refused_unread() -> None:
    """An entry over the size limit is rejected without being parsed."""
    raw = b"{" + b" " * MAX_ENTRY_BYTES + b"}"
    result = validate_job(raw, settings=SETTINGS, now=NOW, job_id="j")
    assert isinstance(result, Invalid) and "at most" in result.errors[0].message


def test_every_error_is_reported_at_once() -> None:
    """A job with several problems lists each of them, with its field."""
    raw = json.dumps({"from_line": "", "to_number": "x", "colour": 1, "deadline": "soon"})
    result = validate_job(raw, settings=SETTINGS, now=NOW, job_id="j")
    assert isinstance(result, Invalid)
    assert {e.field for e in result.errors} == {"from_line", "to_number", "colour", "deadline"}
