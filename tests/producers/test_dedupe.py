"""Dedupe across producers and a worker: one call per portal + line + number, one per key (worker
processes racing: ``tests/integration/test_dedupe.py``)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxHandle
from producers.api import Producer
from schemas.store.keys import Keys
from tests.support.helpers import make_settings, running_worker, sandbox_portal, wait_for, wait_outcomes

TEXT = "Callback request"
LATER = (datetime.now(UTC) + timedelta(days=30)).replace(microsecond=0).isoformat()
LATER_MSK = datetime.fromisoformat(LATER).astimezone(timezone(timedelta(hours=3))).isoformat()
"""The same instant, written in Moscow time."""
"""A month ahead: far enough that nothing runs during a test, within the 366-day horizon."""


def job(number: str, *, line: str = "reg1332", key: str | None = None) -> str:
    """An intake entry's JSON."""
    data = {"from_line": line, "to_number": number, "text_to_pronounce": TEXT}
    if key:
        data["idempotency_key"] = key
    return json.dumps(data)


async def test_five_pushes_three_calls_two_duplicates(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """Two spellings of a number, one key twice, the first number on another line: 3 calls; the key
    with another number is rejected as IDEMPOTENCY_KEY_REUSED."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    entries = [
        job("8 (911) 123-45-67"),
        job("+7 911 123 45 67"),  # the same number spelled otherwise: duplicate
        job("+79112223344", key="lead-1"),
        job("8 911 222-33-44", key="lead-1"),  # the same key and request: the same job, no new call
        job("8 911 123-45-67", line="reg1333"),  # the first number on another line: a new callback
        job("+79115556677", key="lead-1"),  # the same key, another number: refused, never the first job
    ]
    ids = [(await redis.xadd(Keys(prefix).intake, {"job": e})).decode() for e in entries]
    async with running_worker(settings):
        outcomes = await wait_outcomes(redis, prefix, 6)
    by_entry = {o["intake_id"]: o for o in outcomes}
    statuses = [by_entry[i]["status"] for i in ids]
    assert statuses == ["succeeded", "duplicate", "succeeded", "duplicate", "succeeded", "rejected"]
    assert by_entry[ids[1]]["duplicate_of"] == by_entry[ids[0]]["job_id"]
    assert by_entry[ids[3]]["duplicate_of"] == by_entry[ids[2]]["job_id"]
    reused = by_entry[ids[5]]
    assert (reused["error"]["code"], reused["existing_job_id"]) == (
        "IDEMPOTENCY_KEY_REUSED",
        by_entry[ids[2]]["job_id"],
    )
    assert [f["field"] for f in reused["error"]["fields"]] == ["to_number"]
    assert "5556677" not in json.dumps(reused), "the number is masked"
    calls = sorted((c.params["FROM_LINE"], c.params["TO_NUMBER"]) for c in sandbox.calls())
    assert calls == [("reg1332", "+79111234567"), ("reg1332", "+79112223344"), ("reg1333", "+79111234567")]


async def test_idempotency_key_returns_the_first_job(
    redis_url: str, prefix: str, redis: Redis, portal: SandboxHandle
) -> None:
    """Through the Python API a repeated key with the same request returns the first job's id and state and
    makes no job; with a different request it is rejected IDEMPOTENCY_KEY_REUSED naming what differs."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    producer = Producer(redis, settings=settings)
    first = await producer.enqueue(
        from_line="reg1332",
        to_number="+79111234567",
        text_to_pronounce=TEXT,
        idempotency_key="k",
        not_before=LATER,
    )
    same: dict[str, Any] = {"from_line": "reg1332", "text_to_pronounce": TEXT, "idempotency_key": "k"}
    again = await producer.enqueue(**same, to_number="8 911 123 45 67", not_before=LATER_MSK)
    assert first.new and not again.new
    assert (again.job_id, again.status, again.run_at) == (first.job_id, "scheduled", first.run_at)
    other = await producer.enqueue(**{**same, "from_line": "reg1333"}, to_number="+79990000000")
    assert (other.status, other.new, other.existing_job_id) == ("rejected", False, first.job_id)
    assert other.error is not None and other.error.code == "IDEMPOTENCY_KEY_REUSED"
    assert [f["field"] for f in other.error.fields or []] == ["from_line", "to_number", "not_before"]
    assert await redis.zcard(Keys(prefix).queue) == 1


@pytest.mark.parametrize("final", ["cancelled"])
async def test_a_released_claim_lets_a_new_request_through(
    redis_url: str, prefix: str, redis: Redis, portal: SandboxHandle, final: str
) -> None:
    """A cancelled job gives its line + number back: the next request for it is a new job."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    producer = Producer(redis, settings=settings)
    first = await producer.enqueue(
        from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT, not_before=LATER
    )
    assert (
        await producer.enqueue(from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT)
    ).status == "duplicate"
    cancelled, _ = await producer.cancel(first.job_id)
    assert cancelled
    again = await producer.enqueue(from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT)
    assert again.new and again.status == "scheduled"


async def test_success_holds_the_number_for_the_dedupe_window(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """After a success the same number is a duplicate until `dedupe_window` passes, then callable again."""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"), dedupe_window_s=1.0)}
    )
    producer = Producer(redis, settings=settings)
    first = await producer.enqueue(from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT)
    async with running_worker(settings):
        await wait_outcomes(redis, prefix, 1)
        second = await producer.enqueue(from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT)
        assert (second.status, second.duplicate_of) == ("duplicate", first.job_id)
        claim = Keys(prefix).claim("default", "reg1332", "+79111234567")
        await wait_for(lambda: _gone(redis, claim), timeout_s=3, what="the claim to lapse")
        third = await producer.enqueue(from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT)
        assert third.new
        await wait_outcomes(redis, prefix, 3)
    assert len(sandbox.calls()) == 2


async def _gone(redis: Redis, key: str) -> bool:
    return not await redis.exists(key)
