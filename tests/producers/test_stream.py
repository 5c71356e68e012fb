"""The Redis Stream way in (:mod:`producers.stream`), with a worker in this process: malformed entries end
``rejected`` without jamming the intake, an entry waits for a worker, a redelivered entry is the same job."""

from __future__ import annotations

import json
from typing import Any

from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxHandle
from producers.api import Producer
from schemas.store.keys import Keys
from tests.support.helpers import (
    FULL_JOB,
    called_numbers,
    job_json,
    make_settings,
    read_outcomes,
    running_worker,
    sandbox_portal,
    wait_outcomes,
)

NUMBER = "+79111234567"


BAD_ENTRIES: list[tuple[bytes, str, str]] = [
    (b"{not json", "", "not JSON"),
    (b'"just a string"', "", "must be a JSON object"),
    (json.dumps({"to_number": "+79111234567", "text_to_pronounce": "x"}).encode(), "from_line", "required"),
    (json.dumps({**FULL_JOB, "to_number": "+7 000"}).encode(), "to_number", "not a valid phone number"),
    (json.dumps({**FULL_JOB, "colour": "red"}).encode(), "colour", "unknown field"),
    (json.dumps({**FULL_JOB, "portal": "nope"}).encode(), "portal", "nope"),
    (json.dumps({**FULL_JOB, "not_before": "tomorrow at ten"}).encode(), "not_before", "RFC 3339"),
    (json.dumps({**FULL_JOB, "deadline": "2026-11-21T10:00:00"}).encode(), "deadline", "offset"),
    (b"\xff\xfe\x00garbage", "", "not UTF-8"),
]


async def test_bad_entries_are_rejected_and_the_worker_keeps_going(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """Each malformed intake entry ends `rejected` naming the field; a valid job after them is called."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    keys = Keys(prefix)
    ids = [await redis.xadd(keys.intake, {"job": raw}) for raw, _, _ in BAD_ENTRIES]
    ids.append(await redis.xadd(keys.intake, {"payload": b"{}"}))
    good = {**FULL_JOB, "idempotency_key": None}
    await redis.xadd(keys.intake, {"job": json.dumps(good)})
    async with running_worker(settings):
        outcomes = await wait_outcomes(redis, prefix, len(BAD_ENTRIES) + 2)
    by_intake = {o.get("intake_id"): o for o in outcomes}
    for entry_id, (_raw, field, message) in zip(ids, BAD_ENTRIES, strict=False):
        outcome = by_intake[entry_id.decode()]
        assert outcome["status"] == "rejected", outcome
        assert outcome["error"]["code"] == "INVALID_JOB"
        fields = outcome["error"]["fields"]
        assert any(f["field"] == field and message in f["message"] for f in fields), (field, message, fields)
    assert by_intake[ids[-1].decode()]["error"]["fields"][0]["field"] == "job"
    assert [o["status"] for o in outcomes].count("succeeded") == 1
    assert len(sandbox.calls()) == 1


async def test_entry_added_while_no_worker_runs_is_processed_later(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """An entry XADDed before any worker (or consumer group) existed is called once a worker starts."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    await redis.xadd(Keys(prefix).intake, {"job": json.dumps(FULL_JOB)})
    assert await read_outcomes(redis, prefix) == []
    async with running_worker(settings):
        (outcome,) = await wait_outcomes(redis, prefix, 1)
    assert outcome["status"] == "succeeded"
    assert len(sandbox.calls()) == 1


async def test_redelivered_intake_entry_is_the_same_job(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """An entry admitted but not acknowledged (consumer died before XACK) is not a second job when re-read."""
    from producers.stream import IntakeConsumer, entry_job_id

    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    keys = Keys(prefix)
    producer = Producer(redis, settings=settings)
    entry_id = (
        await redis.xadd(keys.intake, {"job": json.dumps({**FULL_JOB, "idempotency_key": None})})
    ).decode()
    first = IntakeConsumer(redis, producer=producer, keys=keys, consumer="dies")
    await first.ensure_group()
    # the first consumer stores the job but "dies" before acknowledging: emulate by admitting by hand
    await producer.submit(
        json.dumps(FULL_JOB), job_id=await entry_job_id(redis, keys, entry_id), intake_id=entry_id
    )
    await redis.xreadgroup("callq", "dies", {keys.intake: ">"}, count=10)
    second = IntakeConsumer(redis, producer=producer, keys=keys, consumer="heir", claim_idle_ms=0)
    assert await second.take_over_abandoned() == 1
    async with running_worker(settings):
        outcomes = await wait_outcomes(redis, prefix, 1)
    assert [o["status"] for o in outcomes] == ["succeeded"]
    assert len(sandbox.calls()) == 1


async def _intake_survives(
    redis_url: str, prefix: str, redis: Redis, portal: SandboxHandle, poison: dict[bytes | str, bytes | str]
) -> list[dict[str, Any]]:
    """Push ``poison`` then a valid entry to an in-process worker; the outcomes, in entry order."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    first = await redis.xadd(Keys(prefix).intake, poison)  # type: ignore[arg-type]
    second = await redis.xadd(Keys(prefix).intake, {"job": job_json(NUMBER)})
    async with running_worker(settings):
        outcomes = await wait_outcomes(redis, prefix, 2, timeout_s=5)
    by_entry = {o.get("intake_id"): o for o in outcomes}
    return [by_entry[first.decode()], by_entry[second.decode()]]


async def test_deeply_nested_entry_is_rejected_without_jamming_the_intake(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """JSON nested 5,000 deep (10 KB) is rejected, and the valid entry behind it is still called."""
    poison, valid = await _intake_survives(redis_url, prefix, redis, portal, {"job": "[" * 5000 + "]" * 5000})
    assert (poison["status"], valid["status"]) == ("rejected", "succeeded")
    assert called_numbers(sandbox) == [NUMBER]


async def test_entry_with_a_non_utf8_field_name_is_rejected_without_jamming_the_intake(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """An entry whose only field name is not UTF-8 is rejected, and the valid entry behind it is still called."""
    poison, valid = await _intake_survives(redis_url, prefix, redis, portal, {b"\xff\xfejob": b"{}"})
    assert (poison["status"], valid["status"]) == ("rejected", "succeeded")
    assert called_numbers(sandbox) == [NUMBER]
