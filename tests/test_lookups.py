"""An idempotency key is looked up on a portal, never on the first portal that has it (issue 11)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ops.sandbox import SandboxHandle
from producers.api import AmbiguousKeyError, Producer, Submitted
from schemas.config import Settings
from schemas.states import Status
from schemas.wire.outcome import outcome_for
from tests.helpers import make_settings, run_callq, sandbox_portal
from tests.processes import write_config

LATER = (datetime.now(UTC) + timedelta(days=1)).isoformat()


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
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CALLQ_")}
    environ.update(CALLQ_REDIS_URL=redis_url, CALLQ_KEY_PREFIX=prefix, CALLQ_CONFIG=str(config))
    return environ


async def same_key_on_both(producer: Producer, key: str = "lead-X") -> dict[str, Submitted]:
    """A job under ``key`` on acme and one on beta, both due tomorrow."""
    jobs = {}
    for portal in ("acme", "beta"):
        jobs[portal] = await producer.enqueue(
            portal=portal,
            from_line="reg1332",
            to_number="+79111234567",
            text_to_pronounce="Hi",
            idempotency_key=key,
            not_before=LATER,
        )
    return jobs


async def test_python_api_lookups_are_portal_qualified(redis: Redis, settings: Settings) -> None:
    """status/cancel by a key on two portals raise AmbiguousKeyError; with portal= each finds its own job."""
    producer = Producer(redis, settings=settings)
    jobs = await same_key_on_both(producer)
    with pytest.raises(AmbiguousKeyError) as info:
        await producer.status("lead-X")
    assert info.value.portals == ("acme", "beta")
    with pytest.raises(AmbiguousKeyError):
        await producer.cancel("lead-X")
    for portal, job in jobs.items():
        record = await producer.status("lead-X", portal=portal)
        assert record is not None and record.job_id == job.job_id
    cancelled, record = await producer.cancel("lead-X", portal="beta")
    assert cancelled and record is not None and record.job_id == jobs["beta"].job_id
    acme = await producer.status(jobs["acme"].job_id)
    assert acme is not None and acme.state == Status.SCHEDULED, (
        "job ids stay global and the other job untouched"
    )
    assert await producer.status(jobs["acme"].job_id, portal="beta") is None
    assert await producer.status("lead-X", scope={"beta"}) is not None


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
