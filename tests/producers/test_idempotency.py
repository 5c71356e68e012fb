"""Is a repeat of an idempotency key the same request? The pure comparison, on validated jobs. No Redis."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from producers.idempotency import differences
from producers.validation import Valid, validate_job
from schemas.config import LineConfig, PortalConfig, Settings

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
ALWAYS = MappingProxyType({day: ((0, 1440),) for day in range(7)})
LINES = MappingProxyType({"reg1332": LineConfig("reg1332", text_to_pronounce="Default text", voice="v1")})
PORTAL = PortalConfig(
    name="default",
    webhook_url="https://a.bitrix24.ru/rest/1/x/",
    timezone=ZoneInfo("UTC"),
    default_region="RU",
    hours=ALWAYS,
    lines=LINES,
)
SETTINGS = Settings(portals=MappingProxyType({"default": PORTAL}))
LINE_CHANGED = [
    "from_line",
    "voice",
]  # the text stays (sent now, the old line's default before); the voice not
FIRST: dict[str, Any] = {
    "from_line": "reg1332",
    "to_number": "8 (911) 123-45-67",
    "idempotency_key": "lead-1",
    "not_before": "2026-11-22T10:00:00+03:00",
    "metadata": {"lead": 1, "form": "contact"},
}


def valid(raw: dict[str, Any], *, now: datetime = NOW) -> Valid:
    """The validated job of ``raw``."""
    result = validate_job(raw, settings=SETTINGS, now=now, job_id="j")
    assert isinstance(result, Valid), result
    return result


@pytest.mark.parametrize(
    ("changes", "fields"),
    [
        pytest.param({}, [], id="same"),
        pytest.param({"to_number": "+7 911 123 45 67"}, [], id="number-respelled"),
        pytest.param({"not_before": "2026-11-22T07:00:00Z"}, [], id="same-instant"),
        pytest.param({"metadata": {"form": "contact", "lead": 1}}, [], id="metadata-key-order"),
        pytest.param({"text_to_pronounce": "Default text", "voice": "v1"}, [], id="line-defaults-sent"),
        pytest.param({"to_number": "+79110000000"}, ["to_number"], id="number"),
        pytest.param({"from_line": "reg1333", "text_to_pronounce": "Default text"}, LINE_CHANGED, id="line"),
        pytest.param({"text_to_pronounce": "Other"}, ["text_to_pronounce"], id="text"),
        pytest.param({"not_before": None}, ["not_before"], id="not-before-left-out"),
        pytest.param({"metadata": {"lead": True, "form": "contact"}}, ["metadata"], id="metadata-1-vs-true"),
        pytest.param({"metadata": {"lead": 1.0, "form": "contact"}}, ["metadata"], id="metadata-1-vs-1.0"),
        pytest.param({"deadline": "2026-11-22T18:00:00Z"}, ["deadline"], id="deadline-sent"),
    ],
)
def test_what_counts_as_the_same_request(changes: dict[str, Any], fields: list[str]) -> None:
    """Normalised values are compared (E.164, instants, JSON, line defaults); each differing field is named."""
    first = valid(FIRST).job
    repeat = valid(
        {k: v for k, v in {**FIRST, **changes}.items() if v is not None}, now=NOW + timedelta(hours=1)
    )
    found = differences(first, repeat.job, deadline_sent=repeat.deadline_sent)
    assert [e.field for e in found] == fields


def test_a_computed_deadline_is_never_compared() -> None:
    """Left out, the deadline is computed from the arrival time: an hour later it differs, and does not count."""
    first, repeat = valid(FIRST).job, valid(FIRST, now=NOW + timedelta(days=2))
    assert first.deadline != repeat.job.deadline and not repeat.deadline_sent
    assert differences(first, repeat.job, deadline_sent=False) == []


def test_a_replay_is_compared_without_its_times() -> None:
    """A job that replays a dead letter runs from now with a fresh deadline: the original request still matches."""
    replay = dataclasses.replace(valid({**FIRST, "not_before": None}).job, replay_of="dead-job")
    original = valid({**FIRST, "deadline": "2026-11-23T10:00:00Z"})
    assert differences(replay, original.job, deadline_sent=True) == []
    other = valid({**FIRST, "to_number": "+79110000000"})
    assert [e.field for e in differences(replay, other.job, deadline_sent=False)] == ["to_number"]


def test_numbers_are_masked_in_what_differs() -> None:
    """The message names both numbers masked, never in full; numbers alike under the mask say so."""
    first = valid(FIRST).job
    (error,) = differences(first, valid({**FIRST, "to_number": "+79110000000"}).job, deadline_sent=False)
    assert error.message == "differs from the first request: +7911***0000, first +7911***4567"
    (error,) = differences(first, valid({**FIRST, "to_number": "+79119994567"}).job, deadline_sent=False)
    assert "9994567" not in error.message and "the mask hides" in error.message
