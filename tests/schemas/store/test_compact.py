"""The compact record layout (issue 16): a final record keeps only what of its outcome it does not say
already, attempt entries and job times are written short, and every reader gets back exactly what
was written, from records of this layout and of the one before it."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from schemas.config import PortalConfig, Settings
from schemas.policy.call_result import CallEnd, CallKind
from schemas.policy.hours import parse_hours
from schemas.states import CallState, Status
from schemas.store.calls import CallStore, settle_call_end
from schemas.store.compact import (
    call_result_rest,
    outcome_fields,
    pack_attempt,
    pack_instant,
    read_call_result,
    read_outcome,
    unpack_attempt,
    unpack_instant,
)
from schemas.store.keys import Keys
from schemas.store.ledger import AdmitRequest, Ledger
from schemas.store.records import decode_record, to_ms
from schemas.store.replies import CallVerdict
from schemas.wire.codes import ErrorCode
from schemas.wire.job import CallbackJob, pack_time, unpack_time
from schemas.wire.outcome import OutcomeError, outcome_for

AT = datetime(2026, 11, 30, 13, 17, 28, 176985, tzinfo=UTC)
JOB = CallbackJob(
    job_id="sz4qvba2ujbhg5osm",
    portal="acme",
    from_line="reg1332",
    to_number="+79111234567",
    text_to_pronounce="Callback from the website",
    created_at="2026-11-30T13:17:24Z",
    not_before="2026-12-01T09:00:00.250Z",
    deadline="2026-12-02T09:00:00Z",
    idempotency_key="lead-4711",
    metadata={"lead": 4711, "form": "contact", "ratio": 0.1},
    intake_id="1796044646154-479",
)
CALL_ID = "callback.22e2456b2658708577474a3cf11235ea.1796044648"
PORTAL = PortalConfig(
    name="default",
    webhook_url="https://example.bitrix24.ru/rest/1/x/",
    timezone=ZoneInfo("UTC"),
    hours=parse_hours(
        {d: "00:00-24:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}, where="h"
    ),
)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-30T13:17:28.176985+00:00",
        "2026-11-30T13:17:28+00:00",
        "2026-11-30T16:17:28.176985+03:00",  # not UTC: kept as text
        "2026-11-30T13:17:28.176985Z",  # not isoformat()'s spelling: kept as text
        "not a time",
    ],
)
def test_an_instant_comes_back_as_the_same_text(text: str) -> None:
    """A time packs to µs only when it unpacks to the very same text; any other text is kept."""
    packed = pack_instant(text)
    assert unpack_instant(packed) == text
    assert isinstance(packed, int) is text.endswith("+00:00")


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("2026-11-30T13:17:24Z", "1796044644000"),
        ("2026-12-01T09:00:00.250Z", "1796115600250"),
        ("2026-12-01T09:00:00.25Z", "2026-12-01T09:00:00.25Z"),  # not callq's spelling
        ("2026-12-01T12:00:00+03:00", "2026-12-01T12:00:00+03:00"),
        ("2026-12-01T09:00:00.123456Z", "2026-12-01T09:00:00.123456Z"),
    ],
)
def test_a_job_time_is_stored_as_ms_when_that_gives_it_back(text: str, stored: str) -> None:
    """The job's times in its record: unix ms for callq's own UTC spellings, the text otherwise."""
    assert pack_time(text) == stored
    assert unpack_time(stored) == text


def test_job_fields_round_trip_and_old_text_times_still_read() -> None:
    """A job written to record fields reads back equal; fields holding times as text (earlier
    versions) read the same."""
    pairs = JOB.to_fields()
    fields = dict(zip(pairs[0::2], pairs[1::2], strict=True))
    assert fields["c"] == "1796044644000" and fields["nb"] == "1796115600250"
    assert CallbackJob.from_fields(fields, JOB.job_id) == JOB
    old = fields | {"c": JOB.created_at, "nb": JOB.not_before or "", "dl": JOB.deadline or ""}
    assert CallbackJob.from_fields(old, JOB.job_id) == JOB


OUTCOMES = [
    outcome_for(JOB, Status.SUCCEEDED, at=AT, attempts=1, call_id=CALL_ID),
    outcome_for(JOB, Status.CANCELLED, at=AT.replace(microsecond=0)),
    outcome_for(
        JOB,
        Status.DEAD,
        at=AT,
        attempts=3,
        error=OutcomeError(code=ErrorCode.OUTCOME_UNKNOWN, description="timed out after 10 s"),
    ),
    outcome_for(JOB, Status.DUPLICATE, at=AT, duplicate_of="s0000000000000000"),
    outcome_for(CallbackJob(**{**JOB.__dict__, "intake_id": None, "metadata": None}), Status.EXPIRED, at=AT),
]


@pytest.mark.parametrize("outcome", OUTCOMES, ids=lambda o: str(o.status))
def test_a_compact_outcome_reads_back_byte_for_byte(outcome: Any) -> None:
    """The record's outcome fields give back the outcome's JSON exactly, member order included, and
    a success's fields all fit Redis's default listpack value size (64 bytes)."""
    job = JOB if outcome.intake_id else CallbackJob(**{**JOB.__dict__, "intake_id": None, "metadata": None})
    pairs = outcome_fields(outcome.to_json(), job)
    assert pairs is not None
    fields = dict(zip(pairs[0::2], pairs[1::2], strict=True))
    rebuilt = read_outcome(fields, job, str(outcome.status))
    assert json.dumps(rebuilt, separators=(",", ":"), ensure_ascii=False) == outcome.to_json()
    if outcome.status is Status.SUCCEEDED:
        assert max(len(v.encode()) for v in pairs) <= 64


def test_an_outcome_the_job_does_not_echo_is_stored_whole() -> None:
    """No job, or an outcome saying other than its job (here another portal): no compact form."""
    outcome = outcome_for(JOB, Status.SUCCEEDED, at=AT, attempts=1)
    assert outcome_fields(outcome.to_json(), None) is None
    other = CallbackJob(**{**JOB.__dict__, "portal": "other"})
    assert outcome_fields(outcome.to_json(), other) is None


@pytest.mark.parametrize(
    "entry",
    [
        {
            "started_at": "2026-11-30T13:17:28.174741+00:00",
            "ended_at": "2026-11-30T13:17:28.176948+00:00",
            "duration_ms": 2,
            "http_status": 200,
            "call_id": CALL_ID,
        },
        {"started_at": "2026-11-30T13:17:28.174741+00:00", "redial": True, "slot_ms": 3},
        {
            "started_at": "2026-11-30T13:17:28.174741+00:00",
            "ended_at": "2026-11-30T16:17:28+03:00",
            "code": "QUERY_LIMIT_EXCEEDED",
            "description": "Too many requests",
            "counts": False,
        },
    ],
)
def test_an_attempt_entry_reads_back_as_written(entry: dict[str, Any]) -> None:
    """A packed attempt entry unpacks to the same members in the same order; a success's CALL_ID,
    the outcome's, is stored once; the entry fits 64 bytes."""
    packed = pack_attempt(entry, call_id=CALL_ID)
    assert CALL_ID not in packed
    assert list(unpack_attempt(packed, call_id=CALL_ID).items()) == list(entry.items())
    if "call_id" in entry:
        assert len(packed) <= 64


def test_a_final_call_result_is_stored_as_what_the_record_does_not_say() -> None:
    """A final call result rebuilt from its rest, the job and the last call's entry is the same, in
    the same order; one that says other than the job is kept whole."""
    last = {
        "call_id": CALL_ID,
        "result": "connected",
        "connected": True,
        "code": "200",
        "reason": "Success",
        "duration_s": 12,
        "started_at": "2026-11-30T13:25:08+03:00",
        "source": "pull",
        "placed_at": "2026-11-30T10:25:08.349000+00:00",
    }
    final = {
        "kind": "call_result",
        "job_id": JOB.job_id,
        "portal": JOB.portal,
        "from_line": JOB.from_line,
        "to_number": "+7911***4567",
        "idempotency_key": JOB.idempotency_key,
        "metadata": JOB.metadata,
        **{k: v for k, v in last.items() if k != "placed_at"},
        "calls": 1,
        "redials": 0,
        "ended_by": "connected",
        "detail": None,
        "time_to_connect_s": 1.5,
        "finished_at": "2026-11-30T10:25:20.000001+00:00",
        "placed_at": last["placed_at"],
    }
    rest = call_result_rest(final, JOB, last)
    assert rest is not None and CALL_ID not in rest and JOB.from_line not in rest
    assert list(read_call_result(rest, JOB, last).items()) == list(final.items())
    assert call_result_rest({**final, "portal": "other"}, JOB, last) is None


def test_an_old_attempt_entry_reads_as_it_is() -> None:
    """An entry written by an earlier version (long names, RFC 3339 times) is read unchanged."""
    old = {"started_at": "2026-11-30T13:17:28.174741+00:00", "http_status": 200, "call_id": CALL_ID}
    assert unpack_attempt(json.dumps(old), call_id=CALL_ID) == old


async def test_an_old_layout_record_reads_as_before(redis: Redis, prefix: str) -> None:
    """A record written by the previous layout (the outcome whole, attempt entries in long form,
    times as text, ``run_at`` in the record) reads as it did: its outcome, attempts, times."""
    keys = Keys(prefix)
    outcome = outcome_for(JOB, Status.SUCCEEDED, at=AT, attempts=1, call_id=CALL_ID)
    attempt = {"started_at": "2026-11-30T13:17:28.174741+00:00", "http_status": 200, "call_id": CALL_ID}
    fields = {
        "p": JOB.portal,
        "l": JOB.from_line,
        "n": JOB.to_number,
        "t": JOB.text_to_pronounce,
        "c": JOB.created_at,
        "nb": JOB.not_before,
        "dl": JOB.deadline,
        "k": JOB.idempotency_key,
        "m": json.dumps(JOB.metadata),
        "i": JOB.intake_id,
        "state": "succeeded",
        "attempts": "1",
        "attempt:1": json.dumps(attempt, separators=(",", ":")),
        "outcome": outcome.to_json(),
        "finished_at": str(to_ms(AT)),
    }
    await cast(Awaitable[int], redis.hset(keys.job(JOB.job_id), mapping=fields))
    record = await Ledger(redis, keys=keys, retention_s=60, outcomes_maxlen=100).read(JOB.job_id)
    assert record is not None
    assert record.job == JOB
    assert record.outcome == json.loads(outcome.to_json())
    assert record.attempt_log == [attempt]
    waiting = {**fields, "state": "scheduled", "run_at": "1796115600250"}
    for name in ("attempts", "attempt:1", "outcome", "finished_at"):
        del waiting[name]
    decoded = decode_record(JOB.job_id, waiting, queue_ms=1.0)
    assert decoded is not None and decoded.run_at == datetime(2026, 12, 1, 9, 0, 0, 250000, tzinfo=UTC)


async def test_a_finished_record_is_compact_and_reads_its_outcome_back(redis: Redis, prefix: str) -> None:
    """A job admitted, started and finalized as a success: its record holds no value over Redis's
    default listpack size (64 bytes) and no ``outcome`` JSON, yet reads back the stream's outcome
    byte for byte, and its attempt entry as written; waiting, its ``run_at`` was the queue's."""
    keys = Keys(prefix)
    ledger = Ledger(redis, keys=keys, retention_s=60, outcomes_maxlen=100)
    now = datetime.now(UTC)
    job = CallbackJob(**{**JOB.__dict__, "job_id": f"{prefix}-1"})
    run_at = now + timedelta(hours=1)
    admission = await ledger.admit(AdmitRequest(job=job, run_at=run_at, pending_ttl_s=7200), now=now)
    assert admission.verdict == "new"
    assert not await cast(Awaitable[bool], redis.hexists(keys.job(job.job_id), "run_at")), "the queue says it"
    waiting = await ledger.read(job.job_id)
    assert waiting is not None and waiting.run_at == datetime.fromtimestamp(to_ms(run_at) / 1000, tz=UTC)
    unread = await ledger.read(job.job_id, run_at=False)
    assert unread is not None and unread.run_at is None

    start = await ledger.start_attempt(job.job_id, portal=job.portal, now=now, info={}, lease_s=30)
    assert start.verdict == "started"
    entry = {
        "started_at": now.isoformat(),
        "ended_at": (now + timedelta(milliseconds=80)).isoformat(),
        "duration_ms": 80,
        "http_status": 200,
        "call_id": CALL_ID,
    }
    outcome = outcome_for(job, Status.SUCCEEDED, at=now, attempts=1, call_id=CALL_ID)
    result = await ledger.finalize(outcome, job=job, attempt=(1, entry), owner=start.token)
    assert result.written

    raw = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(keys.job(job.job_id)))
    assert b"outcome" not in raw
    assert max(len(value) for value in raw.values()) <= 64, {k: len(v) for k, v in raw.items()}
    ((_id, stream_fields),) = await redis.xrange(keys.outcomes)
    assert stream_fields[b"outcome"].decode() == outcome.to_json()
    record = await ledger.read(job.job_id)
    assert record is not None
    assert json.dumps(record.outcome, separators=(",", ":"), ensure_ascii=False) == outcome.to_json()
    assert record.attempt_log == [entry]
    assert record.job == job


async def test_a_compact_records_call_result_entry_carries_its_outcome_byte_for_byte(
    redis: Redis, prefix: str
) -> None:
    """The call result's stream entry of a record that keeps its outcome compact has the job's
    outcome exactly as first appended, with its ``call`` added (``call_end.lua`` gets the JSON
    the record gives back); the record keeps the final call result compact and reads it back."""
    keys = Keys(prefix)
    ledger = Ledger(redis, keys=keys, retention_s=60, outcomes_maxlen=100)
    store = CallStore(redis, keys=keys, retention_s=60, outcomes_maxlen=100)
    now = datetime.now(UTC)
    job = CallbackJob(**{**JOB.__dict__, "job_id": f"{prefix}-2", "portal": "default"})
    await ledger.admit(AdmitRequest(job=job, run_at=now, pending_ttl_s=7200), now=now)
    start = await ledger.start_attempt(job.job_id, portal=job.portal, now=now, info={}, lease_s=30)
    outcome = outcome_for(job, Status.SUCCEEDED, at=now, attempts=1, call_id=CALL_ID)
    assert (await ledger.finalize(outcome, job=job, owner=start.token)).written
    assert not await cast(Awaitable[bool], redis.hexists(keys.job(job.job_id), "outcome"))
    fields = {"call": CallState.AWAITING, "call_id": CALL_ID, "call_attempt": 1, "call_since": 1}
    await cast(Awaitable[int], redis.hset(keys.job(job.job_id), mapping=fields))
    record = await ledger.read(job.job_id)
    assert record is not None
    settings = Settings(key_prefix=prefix, portals={"default": PORTAL})
    end = CallEnd(call_id=CALL_ID, kind=CallKind.DECLINED, code="603")
    assert (await settle_call_end(store, settings, record, end, now=now)).verdict is CallVerdict.WRITTEN
    (_first, (_id, entry)) = await redis.xrange(keys.outcomes)
    assert entry[b"kind"] == b"call_result"
    assert entry[b"outcome"].decode().startswith(outcome.to_json()[:-1] + ',"call":{')
    # the record keeps the final call result compact, and reads it back as published
    raw = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(keys.job(job.job_id)))
    assert b"call_result" not in raw and len(raw[b"cr"]) < 200
    assert b"call_polls" not in raw and b"call_since" not in raw
    ended = await ledger.read(job.job_id)
    assert ended is not None and ended.call is not None
    assert ended.call.final == json.loads(entry[b"call_result"])
    assert json.dumps(ended.call.final) == json.dumps(json.loads(entry[b"call_result"]))
