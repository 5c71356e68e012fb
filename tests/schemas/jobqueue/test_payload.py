"""What a scheduled job stores is short (issue 7's memory target) and reads back whole."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from arq.jobs import deserialize_job_raw

from schemas.jobqueue.names import FUNCTION as ARQ_FUNCTION
from schemas.jobqueue.payload import dumps, loads
from schemas.wire.job import CallbackJob, format_utc, intake_job_id, legacy_intake_job_id

JOB = CallbackJob(
    job_id=intake_job_id("1795293408289-334", b"k" * 32),
    portal="acme",
    from_line="reg1332",
    to_number="+79111234567",
    text_to_pronounce="Hi",
    created_at="2026-11-21T10:00:00Z",
    deadline="2026-11-22T10:00:00Z",
    intake_id="1795293408289-334",
)


LEGACY = replace(JOB, job_id=legacy_intake_job_id("1795293408289-334"))
"""An intake job as 0.2 stored it: its id is ``s`` + the entry id."""


def test_the_record_leaves_out_what_its_key_says_and_reads_back_whole() -> None:
    """The job id and absent optional fields are left out; the intake entry id is kept (the id is an HMAC)."""
    stored = json.loads(JOB.to_json())
    assert "job_id" not in stored
    assert stored["intake_id"] == "1795293408289-334"  # not derivable from an HMAC
    assert "voice" not in stored  # absent optional fields are left out
    assert CallbackJob.from_json(JOB.to_json(), JOB.job_id) == JOB


def test_an_intake_job_id_is_stable_unguessable_and_short() -> None:
    """The same entry and key give the same id; another key another; never the legacy form."""
    entry = "1795293408289-334"
    assert intake_job_id(entry, b"k" * 32) == JOB.job_id
    assert intake_job_id(entry, b"j" * 32) != JOB.job_id
    assert entry not in JOB.job_id and len(JOB.job_id) == 17 and JOB.job_id.startswith("s")


def test_a_record_0_2_stored_still_reads() -> None:
    """0.2 gave an intake job the id s<entry id> and left its intake_id out of the JSON: still read whole."""
    stored = {  # as 0.2 wrote it
        "portal": "acme",
        "from_line": "reg1332",
        "to_number": "+79111234567",
        "text_to_pronounce": "Hi",
        "created_at": "2026-11-21T10:00:00Z",
        "deadline": "2026-11-22T10:00:00Z",
    }
    assert CallbackJob.from_json(json.dumps(stored), "s1795293408289-334") == LEGACY
    assert "intake_id" not in json.loads(LEGACY.to_json())


def test_a_record_0_1_stored_still_reads() -> None:
    """0.1 kept the job id and intake id in the JSON (CHANGELOG.md, 0.2.0: upgrading from 0.1)."""
    old = json.dumps({**json.loads(LEGACY.to_json()), "job_id": LEGACY.job_id, "intake_id": LEGACY.intake_id})
    assert CallbackJob.from_json(old, LEGACY.job_id) == LEGACY
    old_arq = dumps({"t": None, "f": ARQ_FUNCTION, "a": [LEGACY.job_id], "k": {}, "et": 5})
    assert list(deserialize_job_raw(old_arq, deserializer=loads)[1]) == [LEGACY.job_id]


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


def test_a_job_arq_encoded_itself_still_reads() -> None:
    full = {"t": 1, "f": "other", "a": [1], "k": {"x": 2}, "et": 5}
    assert loads(dumps(full)) == full
