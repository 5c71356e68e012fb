"""`callq list` shows each job's call: a succeeded job waiting for its redial is listed, with its call."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from io import StringIO

import pytest
from redis.asyncio import Redis

from ops.cli.jobs import add_list_arguments, call_column, list_jobs
from schemas.policy.call_result import CallEnd, CallKind
from schemas.states import CallState, Status
from schemas.store.calls import settle_call_end
from schemas.store.keys import Keys
from schemas.store.ledger import Ledger
from schemas.store.records import CallFollowUp, JobRecord
from schemas.wire.job import CallbackJob
from tests.support.calls import plant_followed_job
from tests.support.helpers import make_settings, sandbox_portal


def job(job_id: str, number: str) -> CallbackJob:
    return CallbackJob(
        job_id=job_id,
        portal="default",
        from_line="reg1332",
        to_number=number,
        text_to_pronounce="Hi",
        created_at="2026-11-30T00:00:00Z",
    )


def follow_up(state: CallState, final: dict[str, str] | None = None) -> CallFollowUp:
    return CallFollowUp(state, "c1", 1, 1, 0, 0, {}, final)


@pytest.mark.parametrize(
    ("call", "shown"),
    [
        (None, "-"),
        (follow_up(CallState.AWAITING), "awaiting"),
        (follow_up(CallState.REDIAL), "redial"),
        (follow_up(CallState.DIALLING), "dialling"),
        (follow_up(CallState.ENDED, {"result": "connected"}), "connected"),
        (follow_up(CallState.ENDED, {"result": "declined"}), "declined"),
    ],
)
def test_call_column(call: CallFollowUp | None, shown: str) -> None:
    """The final result once known, else where the follow-up is."""
    record = JobRecord(
        job_id="j",
        job=job("j", "+79111234567"),
        state=Status.SUCCEEDED,
        run_at=None,
        attempts=1,
        outcome=None,
        attempt_log=[],
        created_at=None,
        slots={},
        call=call,
    )
    assert call_column(record) == shown


async def test_list_shows_a_job_waiting_for_its_redial(redis: Redis, redis_url: str, prefix: str) -> None:
    """A busy call redials: the succeeded job is pending again and listed with `call redial`; a declined
    one is final and not listed."""
    portal = sandbox_portal("http://127.0.0.1:9/rest/1/x/")
    settings = make_settings(redis_url, prefix, {"default": portal})
    ledger = Ledger(redis, keys=Keys(prefix), retention_s=600, outcomes_maxlen=1000)
    for job_id, number, kind in (
        ("busy1", "+79111230001", CallKind.BUSY),
        ("decl1", "+79111230002", CallKind.DECLINED),
    ):
        store = await plant_followed_job(redis, prefix, portal, job(job_id, number), call_id=f"c-{job_id}")
        record = await ledger.read(job_id)
        assert record is not None
        end = CallEnd(call_id=f"c-{job_id}", kind=kind, code="486" if kind is CallKind.BUSY else "603")
        assert (await settle_call_end(store, settings, record, end, now=datetime.now(UTC))).done
    parser = argparse.ArgumentParser()
    add_list_arguments(parser)
    out = StringIO()
    assert await list_jobs(parser.parse_args([]), settings=settings, redis=redis, out=out) == 0
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("busy1  succeeded") and lines[0].endswith("call redial")
    assert "+79111230001" not in lines[0]
