"""The shipped JSON Schema and the Python job model accept and reject the same jobs."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jsonschema
import pytest
from pydantic import ValidationError

from schemas.wire.job import PHONE_PATTERN, CallbackJob, CallbackJobIn
from tests.support.paths import ROOT

SCHEMA = json.loads((ROOT / "schemas" / "callback_job.schema.json").read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
BASE: dict[str, Any] = {"from_line": "reg1332", "to_number": "+79111234567", "text_to_pronounce": "Hello"}

VALID: list[dict[str, Any]] = [
    BASE,
    {"from_line": "reg1332", "to_number": "8 (911) 123-45-67"},
    {**BASE, "voice": "ruinternalfemale", "portal": "acme_1"},
    {**BASE, "not_before": "2026-11-21T10:00:00+03:00", "deadline": "2026-11-21T18:00:00Z"},
    {**BASE, "not_before": "2026-11-21T10:00:00.123456-05:00"},
    {**BASE, "idempotency_key": "k" * 200, "metadata": {"lead": 4711, "nested": {"a": [1, 2]}}},
    {**BASE, "text_to_pronounce": "x" * 2000},
    {**BASE, "voice": None, "portal": None, "metadata": None},
    {**BASE, "to_number": " +79111234567 "},
    {**BASE, "to_number": "\t8 (911) 123-45-67\r\n"},
]
INVALID: list[dict[str, Any]] = [
    {"to_number": "+79111234567"},
    {"from_line": "reg1332"},
    {**BASE, "from_line": ""},
    {**BASE, "from_line": 1332},
    {**BASE, "to_number": 79111234567},
    {**BASE, "to_number": "call me"},
    {**BASE, "to_number": "12"},
    {**BASE, "to_number": "\u00a0+79111234567"},
    {**BASE, "to_number": "+79111234567\x0b"},
    {**BASE, "to_number": "\n+79111234567\x00"},
    {**BASE, "text_to_pronounce": ""},
    {**BASE, "text_to_pronounce": "x" * 2001},
    {**BASE, "portal": "Acme"},
    {**BASE, "not_before": "2026-11-21T10:00:00"},
    {**BASE, "not_before": "2026-11-21"},
    {**BASE, "deadline": "tomorrow"},
    {**BASE, "deadline": 1763700000},
    {**BASE, "idempotency_key": ""},
    {**BASE, "idempotency_key": "k" * 201},
    {**BASE, "metadata": [1, 2]},
    {**BASE, "metadata": "lead"},
    {**BASE, "colour": "red"},
    {**BASE, "FROM_LINE": "reg1332"},
]


def model_accepts(job: dict[str, Any]) -> bool:
    try:
        CallbackJobIn.model_validate(job)
    except ValidationError:
        return False
    return True


@pytest.mark.parametrize("job", VALID, ids=range(len(VALID)))
def test_both_accept(job: dict[str, Any]) -> None:
    """A valid job passes the JSON Schema and the model."""
    assert VALIDATOR.is_valid(job)
    assert model_accepts(job)


@pytest.mark.parametrize("job", INVALID, ids=range(len(INVALID)))
def test_both_reject(job: dict[str, Any]) -> None:
    """An invalid job fails the JSON Schema and the model alike."""
    assert not VALIDATOR.is_valid(job)
    assert not model_accepts(job)


@pytest.mark.parametrize(
    "job",
    [{**BASE, "metadata": {"blob": "x" * 5000}}, {**BASE, "not_before": "2026-02-30T10:00:00Z"}],
    ids=["metadata-over-4KiB", "impossible-date"],
)
def test_python_only_rules(job: dict[str, Any]) -> None:
    """Rules JSON Schema cannot express (named in its description) are enforced by the model."""
    assert VALIDATOR.is_valid(job)
    assert not model_accepts(job)


def test_the_number_pattern_is_the_models() -> None:
    """The schema's to_number pattern is the one the model checks (schemas.wire.job.PHONE_PATTERN), and the
    model strips the whitespace the pattern allows around a number."""
    assert SCHEMA["properties"]["to_number"]["pattern"] == PHONE_PATTERN
    assert (
        CallbackJobIn.model_validate({**BASE, "to_number": " \t+79111234567\r\n"}).to_number == "+79111234567"
    )


def test_schema_is_valid_draft_2020_12() -> None:
    """The shipped schema is itself a valid draft 2020-12 schema that forbids unknown fields."""
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["additionalProperties"] is False
    assert set(SCHEMA["properties"]) == set(CallbackJobIn.model_fields)


def _stored_job(**changes: Any) -> CallbackJob:
    job = CallbackJob(
        job_id="sabcdefghijklmnop",
        portal="acme",
        from_line="reg1332",
        to_number="+79111234567",
        text_to_pronounce="Hello",
        created_at="2026-11-30T09:00:00Z",
        deadline="2026-12-01T18:00:00Z",
        idempotency_key="lead-42",
        intake_id="1764493200000-0",
    )
    return dataclasses.replace(job, **changes)


@pytest.mark.parametrize(
    "job",
    [
        _stored_job(),
        _stored_job(voice="ruinternetfemale", not_before="2026-12-01T09:00:00+03:00", replay_of="old"),
        _stored_job(metadata={"lead": 42, "name": "Иван", "tags": ["a", "b"]}, idempotency_key=None),
        _stored_job(job_id="s1764493200000-0"),  # a legacy intake id: the entry id is derived, not stored
    ],
)
def test_a_job_reads_back_from_its_record_fields(job: CallbackJob) -> None:
    pairs = job.to_fields()
    fields = dict(zip(pairs[::2], pairs[1::2], strict=True))
    assert CallbackJob.from_fields({**fields, "state": "scheduled", "run_at": "1"}, job.job_id) == job
    assert ("i" in fields) is (job.job_id != "s1764493200000-0")


def test_a_typical_jobs_record_fields_fit_redis_default_compact_encoding() -> None:
    """Redis keeps a hash in its compact encoding while every value is at most 64 bytes (its default)."""
    pairs = _stored_job().to_fields()
    assert max(len(value.encode()) for value in pairs) <= 64
