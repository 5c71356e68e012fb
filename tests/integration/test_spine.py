"""End to end on real Redis, the sandbox and real processes: a job XADDed by another program, and the
``callq`` command's enqueue, status and cancel, to a Bitrix24 call (or none) and an outcome."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import UTC, datetime, timedelta

from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxHandle
from schemas.store.keys import Keys
from tests.support.helpers import FULL_JOB, make_settings, running_worker, sandbox_portal, wait_outcomes
from tests.support.processes import cli_env, run_callq


async def test_stream_job_from_a_non_python_process_is_called_once(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """A job XADDed by redis-cli is called once with E.164 TO_NUMBER and its outcome carries the echo fields."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    redis_cli = shutil.which("redis-cli")
    assert redis_cli, "redis-cli is installed with redis-server"
    host_port = redis_url.removeprefix("redis://").split("/")[0].split(":")
    async with running_worker(settings):
        proc = await asyncio.create_subprocess_exec(
            redis_cli,
            "-h",
            host_port[0],
            "-p",
            host_port[1],
            "XADD",
            Keys(prefix).intake,
            "*",
            "job",
            json.dumps(FULL_JOB, ensure_ascii=False),
            stdout=asyncio.subprocess.PIPE,
        )
        entry_id = (await proc.communicate())[0].decode().strip()
        (outcome,) = await wait_outcomes(redis, prefix, 1)
    calls = sandbox.calls(portal="default")
    assert len(calls) == 1
    assert calls[0].params == {
        "FROM_LINE": "reg1332",
        "TO_NUMBER": "+79111234567",
        "TEXT_TO_PRONOUNCE": FULL_JOB["text_to_pronounce"],
        "VOICE": "usenglishfemale",
    }
    assert outcome["status"] == "succeeded"
    assert outcome["call_id"].startswith("callback.")
    assert outcome["metadata"] == FULL_JOB["metadata"]
    assert outcome["idempotency_key"] == "lead-4711"
    assert outcome["attempts"] == 1
    assert outcome["intake_id"] == entry_id
    assert outcome["error"] is None
    assert await redis.xlen(Keys(prefix).intake) == 0, "acknowledged entries are deleted"


async def test_cli_enqueue_later_then_cancel_makes_no_call(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """`callq enqueue --in 1h` is scheduled an hour ahead; `callq cancel` ends it cancelled with no call."""
    env = cli_env(redis_url, prefix, portal.webhook_url("default"))
    before = datetime.now(UTC)
    code, out, err = await run_callq(
        ["enqueue", "--line", "reg1332", "--to", "+79111234567", "--text", "Hi", "--in", "1h", "--json"], env
    )
    assert code == 0, err
    job_id = json.loads(out)["job_id"]
    _code, out, _err = await run_callq(["status", job_id, "--json"], env)
    view = json.loads(out)
    assert view["status"] == "scheduled"
    run_at = datetime.fromisoformat(view["run_at"])
    assert before + timedelta(hours=1) <= run_at <= datetime.now(UTC) + timedelta(hours=1)
    code, out, err = await run_callq(["cancel", job_id, "--json"], env)
    assert code == 0, err
    assert json.loads(out)["status"] == "cancelled"
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    async with running_worker(settings):
        (outcome,) = await wait_outcomes(redis, prefix, 1)
    assert outcome["status"] == "cancelled" and outcome["job_id"] == job_id
    assert sandbox.calls() == []
    assert await redis.zcard(Keys(prefix).queue) == 0, "a cancelled job leaves arq's queue"


async def test_cli_enqueue_now_is_called_and_status_shows_outcome(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """`callq enqueue` without a time is called at once; `callq status` by idempotency key shows the outcome."""
    env = cli_env(redis_url, prefix, portal.webhook_url("default"))
    code, out, err = await run_callq(
        ["enqueue", "--line", "reg1333", "--to", "+7 (911) 123-45-67", "--text", "Hi", "--key", "k-1"], env
    )
    assert code == 0, err
    assert "scheduled" in out
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    async with running_worker(settings):
        await wait_outcomes(redis, prefix, 1)
    _code, out, _err = await run_callq(["status", "k-1", "--json"], env)
    view = json.loads(out)
    assert view["status"] == "succeeded"
    assert view["outcome"]["call_id"] == sandbox.calls()[0].call_id
    assert view["to_number"] == "+7911***4567"
