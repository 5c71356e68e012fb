"""End to end on real Redis and the sandbox: every way in, to a Bitrix24 call, to an outcome."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxHandle
from producers.api import Producer
from schemas.store.keys import Keys
from tests.helpers import (
    NEUTRAL_CWD,
    make_settings,
    read_outcomes,
    running_worker,
    sandbox_portal,
    wait_outcomes,
)
from tests.processes import write_config

JOB = {
    "from_line": "reg1332",
    "to_number": "8 (911) 123-45-67",
    "text_to_pronounce": "Callback request from the website, connecting you.",
    "voice": "usenglishfemale",
    "idempotency_key": "lead-4711",
    "metadata": {"lead": 4711, "form": "contact"},
}


def cli_env(redis_url: str, prefix: str, webhook_url: str) -> dict[str, str]:
    """Environment for a `callq` subprocess against this test's prefix and the sandbox.

    The portal comes from a config file open around the clock: with CALLQ_WEBHOOK_URL alone it
    would have the default hours (09:00-21:00 UTC), and the tests would depend on the time of day.
    """
    config = write_config(
        Path(tempfile.mkdtemp(prefix="callq-test-")) / "callq.toml", {"default": {"webhook_url": webhook_url}}
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQ_")}
    env.update(CALLQ_REDIS_URL=redis_url, CALLQ_KEY_PREFIX=prefix, CALLQ_CONFIG=str(config))
    return env


def run_cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the `callq` command (as ops would, from a directory without callq.toml) and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "ops.cli", *args],
        env=env,
        cwd=NEUTRAL_CWD,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


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
            json.dumps(JOB, ensure_ascii=False),
            stdout=asyncio.subprocess.PIPE,
        )
        entry_id = (await proc.communicate())[0].decode().strip()
        (outcome,) = await wait_outcomes(redis, prefix, 1)
    calls = sandbox.calls(portal="default")
    assert len(calls) == 1
    assert calls[0].params == {
        "FROM_LINE": "reg1332",
        "TO_NUMBER": "+79111234567",
        "TEXT_TO_PRONOUNCE": JOB["text_to_pronounce"],
        "VOICE": "usenglishfemale",
    }
    assert outcome["status"] == "succeeded"
    assert outcome["call_id"].startswith("callback.")
    assert outcome["metadata"] == JOB["metadata"]
    assert outcome["idempotency_key"] == "lead-4711"
    assert outcome["attempts"] == 1
    assert outcome["intake_id"] == entry_id
    assert outcome["error"] is None
    assert await redis.xlen(Keys(prefix).intake) == 0, "acknowledged entries are deleted"


async def test_python_api_job_succeeds(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """The Python producer returns a new job id, and the worker calls it."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    submitted = await Producer(redis, settings=settings).enqueue(
        from_line="reg1332", to_number="+7 911 123-45-67", text_to_pronounce="Hello", metadata={"lead": 1}
    )
    assert submitted.new and submitted.status == "scheduled"
    async with running_worker(settings):
        (outcome,) = await wait_outcomes(redis, prefix, 1)
    assert outcome["job_id"] == submitted.job_id
    assert outcome["status"] == "succeeded"
    assert [c.params["TO_NUMBER"] for c in sandbox.calls(portal="default")] == ["+79111234567"]


async def test_cli_enqueue_later_then_cancel_makes_no_call(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """`callq enqueue --in 1h` is scheduled an hour ahead; `callq cancel` ends it cancelled with no call."""
    env = cli_env(redis_url, prefix, portal.webhook_url("default"))
    before = datetime.now(UTC)
    enq = run_cli(
        ["enqueue", "--line", "reg1332", "--to", "+79111234567", "--text", "Hi", "--in", "1h", "--json"], env
    )
    assert enq.returncode == 0, enq.stderr
    job_id = json.loads(enq.stdout)["job_id"]
    shown = run_cli(["status", job_id, "--json"], env)
    view = json.loads(shown.stdout)
    assert view["status"] == "scheduled"
    run_at = datetime.fromisoformat(view["run_at"])
    assert before + timedelta(hours=1) <= run_at <= datetime.now(UTC) + timedelta(hours=1)
    cancelled = run_cli(["cancel", job_id, "--json"], env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert json.loads(cancelled.stdout)["status"] == "cancelled"
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
    enq = run_cli(
        ["enqueue", "--line", "reg1333", "--to", "+7 (911) 123-45-67", "--text", "Hi", "--key", "k-1"], env
    )
    assert enq.returncode == 0, enq.stderr
    assert "scheduled" in enq.stdout
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    async with running_worker(settings):
        await wait_outcomes(redis, prefix, 1)
    shown = run_cli(["status", "k-1", "--json"], env)
    view = json.loads(shown.stdout)
    assert view["status"] == "succeeded"
    assert view["outcome"]["call_id"] == sandbox.calls()[0].call_id
    assert view["to_number"] == "+7911***4567"


BAD_ENTRIES: list[tuple[bytes, str, str]] = [
    (b"{not json", "", "not JSON"),
    (b'"just a string"', "", "must be a JSON object"),
    (json.dumps({"to_number": "+79111234567", "text_to_pronounce": "x"}).encode(), "from_line", "required"),
    (json.dumps({**JOB, "to_number": "+7 000"}).encode(), "to_number", "not a valid phone number"),
    (json.dumps({**JOB, "colour": "red"}).encode(), "colour", "unknown field"),
    (json.dumps({**JOB, "portal": "nope"}).encode(), "portal", "nope"),
    (json.dumps({**JOB, "not_before": "tomorrow at ten"}).encode(), "not_before", "RFC 3339"),
    (json.dumps({**JOB, "deadline": "2026-11-21T10:00:00"}).encode(), "deadline", "offset"),
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
    good = {**JOB, "idempotency_key": None}
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
    await redis.xadd(Keys(prefix).intake, {"job": json.dumps(JOB)})
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
    entry_id = (await redis.xadd(keys.intake, {"job": json.dumps({**JOB, "idempotency_key": None})})).decode()
    first = IntakeConsumer(redis, producer=producer, keys=keys, consumer="dies")
    await first.ensure_group()
    # the first consumer stores the job but "dies" before acknowledging: emulate by admitting by hand
    await producer.submit(
        json.dumps(JOB), job_id=await entry_job_id(redis, keys, entry_id), intake_id=entry_id
    )
    await redis.xreadgroup("callq", "dies", {keys.intake: ">"}, count=10)
    second = IntakeConsumer(redis, producer=producer, keys=keys, consumer="heir", claim_idle_ms=0)
    assert await second.take_over_abandoned() == 1
    async with running_worker(settings):
        outcomes = await wait_outcomes(redis, prefix, 1)
    assert [o["status"] for o in outcomes] == ["succeeded"]
    assert len(sandbox.calls()) == 1
