"""A reused idempotency key through the CLI, and after a dead-letter replay (issue 11)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from ops.sandbox import SandboxHandle
from producers.api import Producer
from producers.deadletters import DeadLetters
from schemas.states import Status
from schemas.wire.outcome import outcome_for
from tests.helpers import make_settings, read_outcomes, run_callq, sandbox_portal
from tests.test_spine import cli_env

LATER = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:00Z")
"""A month ahead (within the 366-day horizon), to the minute: `--at` takes it as is."""
LATER_DAY = (datetime.fromisoformat(LATER) + timedelta(days=1)).isoformat()


async def test_cli_enqueue_with_a_reused_key_exits_1_naming_what_differs(
    redis_url: str, prefix: str, redis: Redis, portal: SandboxHandle
) -> None:
    """`callq enqueue --key K` again with another number prints IDEMPOTENCY_KEY_REUSED, the field, the
    number masked, and exits 1; with the same request it prints the first job and exits 0."""
    env = cli_env(redis_url, prefix, portal.webhook_url("default"))
    base = ["enqueue", "--line", "reg1332", "--text", "Hi", "--key", "lead-5", "--at", LATER]
    code, out, err = await run_callq([*base, "--to", "+79111234567", "--json"], env)
    assert code == 0, err
    first = json.loads(out)
    code, out, err = await run_callq([*base, "--to", "+7 (911) 123-45-67", "--json"], env)
    assert (code, json.loads(out)["job_id"]) == (0, first["job_id"]), err
    code, out, err = await run_callq([*base, "--to", "+79110000000"], env)
    assert code == 1, err
    assert " rejected: " in out
    assert (
        f"belongs to job {first['job_id']}" in out and "to_number: differs" in out and "+7911***0000" in out
    )
    assert "9110000000" not in out + err
    outcomes = await read_outcomes(redis, prefix)
    assert [(o["status"], o["error"]["code"]) for o in outcomes] == [("rejected", "IDEMPOTENCY_KEY_REUSED")]


async def test_the_original_request_after_a_replay_is_no_conflict(
    redis_url: str, prefix: str, redis: Redis, portal: SandboxHandle
) -> None:
    """A dead job with a key is replayed (fresh not_before and deadline); the producer's original request,
    sent again, answers with the replay, not IDEMPOTENCY_KEY_REUSED."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    producer = Producer(redis, settings=settings)
    request = {
        "from_line": "reg1332",
        "to_number": "+79111234567",
        "text_to_pronounce": "Hi",
        "idempotency_key": "lead-6",
        "not_before": LATER,
        "deadline": LATER_DAY,
    }
    first = await producer.submit(request)
    record = await producer.status(first.job_id)
    assert record is not None
    dead = outcome_for(record.job, Status.DEAD, at=datetime.now(UTC), attempts=1)
    assert (await producer.ledger.finalize(dead, job=record.job)).written
    replayed = await DeadLetters(producer).replay(first.job_id)
    assert replayed.submitted is not None and replayed.submitted.status == Status.SCHEDULED
    again = await producer.submit(request)
    assert (again.job_id, again.status, again.new) == (replayed.submitted.job_id, Status.SCHEDULED, False)
    assert again.error is None
