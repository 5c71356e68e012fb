"""Validation of raw input: decoding, sizes, normalisation. Pure, no Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from producers import validation
from producers.validation import MAX_ENTRY_BYTES, Invalid, Valid, validate_job
from schemas.config import PortalConfig, Settings

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ALWAYS = MappingProxyType({day: ((0, 1440),) for day in range(7)})
SETTINGS = Settings(
    portals=MappingProxyType(
        {
            "default": PortalConfig(
                name="default",
                webhook_url="https://a.bitrix24.ru/rest/1/x/",
                timezone=ZoneInfo("UTC"),
                default_region="RU",
                hours=ALWAYS,
            )
        }
    )
)


@pytest.mark.parametrize(
    ("number", "e164"),
    [
        ("8 (911) 123-45-67", "+79111234567"),
        ("+7 911 123 45 67", "+79111234567"),
        ("89111234567", "+79111234567"),
        ("+49 30 1234567", "+49301234567"),
        ("+1 (212) 555-0123", "+12125550123"),
    ],
)
def test_numbers_become_e164(number: str, e164: str) -> None:
    """Every spelling of a number in the portal's region, or with +code, becomes E.164."""
    result = validate_job(
        {"from_line": "l", "to_number": number, "text_to_pronounce": "t"},
        settings=SETTINGS,
        now=NOW,
        job_id="j",
    )
    assert isinstance(result, Valid) and result.job.to_number == e164


@pytest.mark.parametrize(
    "number", [" +79111234567", "+79111234567 ", "\t8 (911) 123-45-67\r\n", "  89111234567  "]
)
def test_whitespace_around_a_number_is_stripped(number: str) -> None:
    """Spaces, tabs and line breaks around a number are not part of it: stripped, then parsed."""
    result = validate_job(
        {"from_line": "l", "to_number": number, "text_to_pronounce": "t"},
        settings=SETTINGS,
        now=NOW,
        job_id="j",
    )
    assert isinstance(result, Valid) and result.job.to_number == "+79111234567"


@pytest.mark.parametrize(
    "number", ["\u00a0+79111234567", "+7911\x0b1234567", "+79111234567\x00", "tel:+79111234567"]
)
def test_other_characters_around_a_number_are_refused(number: str) -> None:
    """Other characters (no-break space, control characters, a scheme) are refused with the shape message."""
    result = validate_job(
        {"from_line": "l", "to_number": number, "text_to_pronounce": "t"},
        settings=SETTINGS,
        now=NOW,
        job_id="j",
    )
    assert isinstance(result, Invalid)
    assert [e.field for e in result.errors] == ["to_number"]


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


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (b"[" * 5000 + b"]" * 5000, "", "nested more than"),
        (
            b'{"from_line": "\\ud800", "to_number": "+79111234567", "text_to_pronounce": "t"}',
            "from_line",
            "not Unicode text",
        ),
        (
            b'{"from_line": "l", "to_number": "+79111234567", "text_to_pronounce": "t", "metadata": {"x": NaN}}',
            "",
            "NaN is not a JSON number",
        ),
        (
            b'{"from_line": "l", "to_number": "+79111234567", "text_to_pronounce": "t", "metadata": {"x": 1e999}}',
            "",
            "out of range",
        ),
        (
            (
                b'{"from_line": "l", "to_number": "+79111234567", "text_to_pronounce": "t",'
                b' "deadline": "9999-12-31T23:59:59-23:59"}'
            ),
            "deadline",
            "days ahead",
        ),
    ],
    ids=["deep", "lone-surrogate", "nan", "infinity", "year-9999"],
)
def test_input_that_cannot_be_stored_is_rejected(raw: bytes, field: str, message: str) -> None:
    """Every way in gets strict JSON: input Redis or JSON cannot carry is rejected, never a crash."""
    result = validate_job(raw, settings=SETTINGS, now=NOW, job_id="j")
    assert isinstance(result, Invalid), result
    assert any(e.field == field and message in e.message for e in result.errors), result.errors


def test_python_api_values_are_checked_too() -> None:
    """A decoded dict from the Python API with NaN metadata is rejected like JSON text."""
    data = {
        "from_line": "l",
        "to_number": "+79111234567",
        "text_to_pronounce": "t",
        "metadata": {"x": float("nan")},
    }
    result = validate_job(data, settings=SETTINGS, now=NOW, job_id="j")
    assert isinstance(result, Invalid) and result.errors[0].field == "metadata"


@pytest.mark.parametrize(
    ("field", "ahead", "accepted"),
    [
        ("not_before", timedelta(days=365), True),
        ("not_before", timedelta(days=367), False),
        ("deadline", timedelta(days=366), True),
        ("deadline", timedelta(days=400), False),
        ("not_before", datetime(3000, 1, 1, tzinfo=UTC) - NOW, False),
    ],
    ids=["not-before-365d", "not-before-367d", "deadline-366d", "deadline-400d", "year-3000"],
)
def test_dates_beyond_the_horizon_are_rejected(field: str, ahead: timedelta, accepted: bool) -> None:
    """`not_before` and `deadline` may be at most 366 days ahead: beyond, a clear error on that field."""
    job = {
        "from_line": "l",
        "to_number": "+79111234567",
        "text_to_pronounce": "t",
        field: (NOW + ahead).isoformat(),
    }
    result = validate_job(job, settings=SETTINGS, now=NOW, job_id="j")
    if accepted:
        assert isinstance(result, Valid)
    else:
        assert isinstance(result, Invalid)
        assert [(e.field, e.message) for e in result.errors] == [
            (field, "is more than 366 days ahead; callq holds a callback at most that long")
        ]


@pytest.mark.parametrize(
    ("entry", "field", "says"),
    [
        ({"89111234567": "x"}, "89***67", "unknown field (allowed: from_line,"),
        ({"portal": "79111234567"}, "portal", 'unknown portal "79***67" (configured: default)'),
        (
            {"from_line": "+79111234567", "text_to_pronounce": None},
            "text_to_pronounce",
            "required: line '+7911***4567'",
        ),
    ],
)
def test_errors_say_what_is_wrong_without_echoing_a_number(
    entry: dict[str, Any], field: str, says: str
) -> None:
    """A number used as a field name, portal or line is masked in the errors, which still name the problem."""
    job = {"from_line": "l", "to_number": "+79112223344", "text_to_pronounce": "t", **entry}
    result = validate_job(
        {k: v for k, v in job.items() if v is not None}, settings=SETTINGS, now=NOW, job_id="j"
    )
    assert isinstance(result, Invalid)
    [error] = [e.to_dict() for e in result.errors]
    assert error["field"] == field and error["message"].startswith(says)
    shown = json.dumps([error, result.description, result.echo])
    assert "9111234567" not in shown and "9112223344" not in shown


@pytest.mark.parametrize(
    ("moment", "round_up", "stored"),
    [
        (datetime(2026, 12, 1, 7, 0, tzinfo=UTC), True, "2026-12-01T07:00:00Z"),
        (datetime(2026, 12, 1, 7, 0, 0, 957_921, tzinfo=UTC), True, "2026-12-01T07:00:00.958Z"),
        (datetime(2026, 12, 1, 7, 0, 0, 957_921, tzinfo=UTC), False, "2026-12-01T07:00:00.957Z"),
        (datetime(2026, 12, 1, 7, 0, 0, 957_000, tzinfo=UTC), True, "2026-12-01T07:00:00.957Z"),
        (datetime(2026, 12, 1, 7, 0, 0, 999_500, tzinfo=UTC), True, "2026-12-01T07:00:01Z"),
    ],
)
def test_times_are_stored_to_the_millisecond_never_earlier_or_later(
    moment: datetime, round_up: bool, stored: str
) -> None:
    """not_before rounds up and deadline down to the millisecond: shorter records, never an early call
    or one past the deadline."""
    assert validation._utc(moment, round_up=round_up) == stored
