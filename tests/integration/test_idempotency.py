"""A reused idempotency key through the CLI (issue 11)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from ops.sandbox import SandboxHandle
from tests.support.helpers import read_outcomes
from tests.support.processes import cli_env, run_callq

LATER = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:00Z")
"""A month ahead (within the 366-day horizon), to the minute: `--at` takes it as is."""


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
