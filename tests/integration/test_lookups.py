"""The `callq` command looks an idempotency key up on a portal, never on the first portal that has it
(issue 11)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ops.sandbox import SandboxHandle
from producers.api import Producer
from schemas.config import Settings
from schemas.states import Status
from schemas.wire.outcome import outcome_for
from tests.support.helpers import make_settings, same_key_on_both, sandbox_portal
from tests.support.processes import callq_env, run_callq, write_config


@pytest.fixture
def settings(redis_url: str, prefix: str, portal: SandboxHandle) -> Settings:
    """Two portals, acme and beta."""
    url = portal.webhook_url("default")
    return make_settings(
        redis_url, prefix, {name: sandbox_portal(url, name=name) for name in ("acme", "beta")}
    )


@pytest.fixture
def env(redis_url: str, prefix: str, portal: SandboxHandle, tmp_path: Path) -> dict[str, str]:
    """The environment of a `callq` command on this test's prefix, with the same two portals."""
    url = portal.webhook_url("default")
    config = write_config(
        tmp_path / "callq.toml", {"acme": {"webhook_url": url}, "beta": {"webhook_url": url}}
    )
    return callq_env(CALLQ_REDIS_URL=redis_url, CALLQ_KEY_PREFIX=prefix, CALLQ_CONFIG=str(config))


async def test_cli_status_and_cancel_need_a_portal_for_a_shared_key(
    redis: Redis, settings: Settings, env: dict[str, str]
) -> None:
    """`callq status|cancel KEY` exit 2 naming both portals; with --portal they act on that portal's job only."""
    jobs = await same_key_on_both(Producer(redis, settings=settings))
    for command in ("status", "cancel"):
        code, out, err = await run_callq([command, "lead-X", "--json"], env)
        assert (code, out) == (2, ""), err
        assert "several portals (acme, beta)" in err and "--portal" in err
    code, out, err = await run_callq(["status", "lead-X", "--portal", "acme", "--json"], env)
    assert (code, json.loads(out)["job_id"]) == (0, jobs["acme"].job_id), err
    code, out, err = await run_callq(["cancel", "lead-X", "--portal", "beta", "--json"], env)
    assert (code, json.loads(out)["job_id"], json.loads(out)["status"]) == (
        0,
        jobs["beta"].job_id,
        "cancelled",
    )
    code, out, _ = await run_callq(["status", jobs["acme"].job_id, "--json"], env)
    assert json.loads(out)["status"] == "scheduled"
    code, _, err = await run_callq(["status", "lead-X", "--portal", "gamma"], env)
    assert code == 2 and 'unknown portal "gamma"' in err


async def test_cli_dead_show_and_replay_need_a_portal_for_a_shared_key(
    redis: Redis, settings: Settings, env: dict[str, str]
) -> None:
    """`callq dead show|replay KEY` exit 2 for a key dead on two portals; --portal picks one."""
    producer = Producer(redis, settings=settings)
    jobs = await same_key_on_both(producer)
    for job in jobs.values():
        record = await producer.status(job.job_id)
        assert record is not None
        dead = outcome_for(record.job, Status.DEAD, at=datetime.now(UTC), attempts=1)
        assert (await producer.ledger.finalize(dead, job=record.job)).written
    for command in ("show", "replay"):
        code, _, err = await run_callq(["dead", command, "lead-X"], env)
        assert code == 2 and "several portals (acme, beta)" in err, err
    code, out, err = await run_callq(["dead", "show", "lead-X", "--portal", "beta", "--json"], env)
    assert (code, json.loads(out)["job_id"]) == (0, jobs["beta"].job_id), err
    code, out, err = await run_callq(["dead", "replay", "lead-X", "--portal", "acme", "--json"], env)
    (row,) = json.loads(out)
    assert (code, row["replayed"]) == (0, jobs["acme"].job_id), err
    beta = await producer.status(jobs["beta"].job_id)
    assert beta is not None and beta.state == Status.DEAD, "the other portal's dead job is left alone"
