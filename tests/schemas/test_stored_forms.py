"""What a scheduled job stores is short (issue 7's memory target) and reads back whole."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from arq.jobs import deserialize_job_raw

from schemas.job import CallbackJob, format_utc, intake_job_id
from schemas.keys import ARQ_FUNCTION
from schemas.ledger import arq_payload
from worker.app import dumps, loads

JOB = CallbackJob(
    job_id=intake_job_id("1795293408289-334"),
    portal="acme",
    from_line="reg1332",
    to_number="+79111234567",
    text_to_pronounce="Hi",
    created_at="2026-11-21T10:00:00Z",
    deadline="2026-11-22T10:00:00Z",
    intake_id="1795293408289-334",
)


def test_the_record_leaves_out_what_its_key_says_and_reads_back_whole() -> None:
    stored = json.loads(JOB.to_json())
    assert "job_id" not in stored
    assert "intake_id" not in stored  # derived from the job id
    assert "voice" not in stored  # absent optional fields are left out
    assert CallbackJob.from_json(JOB.to_json(), JOB.job_id) == JOB


def test_a_record_0_1_stored_still_reads() -> None:
    """0.1 kept the job id and intake id in the JSON (README, upgrading from 0.1)."""
    old = json.dumps({**json.loads(JOB.to_json()), "job_id": JOB.job_id, "intake_id": JOB.intake_id})
    assert CallbackJob.from_json(old, JOB.job_id) == JOB
    old_arq = dumps({"t": None, "f": ARQ_FUNCTION, "a": [JOB.job_id], "k": {}, "et": 5})
    assert list(deserialize_job_raw(old_arq, deserializer=loads)[1]) == [JOB.job_id]


def test_an_intake_id_that_is_not_derived_is_kept() -> None:
    api_job = replace(JOB, job_id="0123456789abcdef0123", intake_id=None)
    assert CallbackJob.from_json(api_job.to_json(), api_job.job_id) == api_job
    other = replace(JOB, job_id="0123456789abcdef0123")
    assert json.loads(other.to_json())["intake_id"] == "1795293408289-334"
    assert CallbackJob.from_json(other.to_json(), other.job_id) == other


def test_times_are_written_short_in_utc() -> None:
    moscow = timezone(timedelta(hours=3))
    assert format_utc(datetime(2026, 11, 21, 13, 0, tzinfo=moscow)) == "2026-11-21T10:00:00Z"
    assert format_utc(datetime(2026, 11, 21, 10, 0, 0, 250_000, tzinfo=UTC)) == "2026-11-21T10:00:00.250000Z"
    assert format_utc(datetime(2026, 11, 21, 10, 0, 0, 250_000, tzinfo=UTC), timespec="seconds") == (
        "2026-11-21T10:00:00Z"
    )


def test_the_short_arq_job_reads_as_arqs_own() -> None:
    raw = arq_payload("s1795293408289-334", 1795293408447).encode()
    # 44 bytes or fewer: Redis keeps the value inside its object (embstr), one allocation less
    assert len(raw) <= 44
    function, args, kwargs, job_try, enqueue_ms = deserialize_job_raw(raw, deserializer=loads)
    assert (function, list(args), kwargs, enqueue_ms) == (
        ARQ_FUNCTION,
        ["s1795293408289-334"],
        {},
        1795293408447,
    )
    assert job_try is None  # arq hints int; its own jobs store None too


def test_a_job_arq_encoded_itself_still_reads() -> None:
    full = {"t": 1, "f": "other", "a": [1], "k": {"x": 2}, "et": 5}
    assert loads(dumps(full)) == full
