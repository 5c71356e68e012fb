"""No webhook secret and no full phone number reaches the logs, on any path (errors included)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from redis.asyncio import Redis

from ops.redis_server import free_port
from ops.sandbox import Fault, Sandbox, SandboxHandle
from schemas.keys import Keys
from tests.helpers import run_callq, wait_outcomes
from tests.processes import WorkerProcess, write_config

SECRET = "sandboxsecret"
DEAD_SECRET = "nobodylistenshere"
NUMBERS = ["+79111234567", "+79112223344", "+79115556677", "+79118889900", "+79113334455", "+79116667788"]


async def test_logs_hold_no_secret_and_no_full_number(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle, tmp_path: Path
) -> None:
    """Success, QUERY_LIMIT_EXCEEDED, a 502 page echoing the URL, ERROR_CORE, refused connection, rejection, CLI."""
    dead_url = f"http://127.0.0.1:{free_port()}/rest/1/{DEAD_SECRET}/"
    config = write_config(tmp_path / "callq.toml", {
        "default": {"webhook_url": portal.webhook_url("default"), "default_region": "RU", "max_attempts": 1},
        "gone": {"webhook_url": dead_url, "default_region": "RU", "max_attempts": 1},
    })  # fmt: skip
    sandbox.add_faults([
        Fault.error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"),
        Fault.raw(502, f"<html>Bad gateway at /rest/1/{SECRET}/voximplant.callback.start.json</html>", executed=False),
        Fault.error(400, "ERROR_CORE", "Phone number is not correct"),
    ])  # fmt: skip
    jobs = [
        {
            "portal": "default",
            "from_line": "reg1332",
            "to_number": "8 (911) 123-45-67",
            "text_to_pronounce": "x",
        },
        {"portal": "default", "from_line": "reg1332", "to_number": NUMBERS[1], "text_to_pronounce": "x"},
        {"portal": "default", "from_line": "reg1332", "to_number": NUMBERS[2], "text_to_pronounce": "x"},
        {"portal": "gone", "from_line": "reg1332", "to_number": NUMBERS[3], "text_to_pronounce": "x"},
        {
            "portal": "default",
            "from_line": "reg1332",
            "to_number": NUMBERS[4],
        },  # no text: rejected, number in the input
        {
            "portal": "default",
            "from_line": "reg1332",
            "to_number": NUMBERS[1],
            "text_to_pronounce": "x",
        },  # duplicate
    ]
    log_path = tmp_path / "worker.log"
    with WorkerProcess(config=config, redis_url=redis_url, prefix=prefix, log_path=log_path,
                       extra_args=("--concurrency", "1")):  # fmt: skip
        for job in jobs:
            await redis.xadd(Keys(prefix).intake, {"job": json.dumps(job)})
        env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQ_")}
        env.update(CALLQ_CONFIG=str(config), CALLQ_REDIS_URL=redis_url, CALLQ_KEY_PREFIX=prefix)
        _code, _cli_out, cli_err = await run_callq(
            ["--log-format", "json", "enqueue", "--portal", "default", "--line", "reg1332", "--to", NUMBERS[5],
             "--text", "x"], env)  # fmt: skip
        outcomes = await wait_outcomes(redis, prefix, len(jobs) + 1, timeout_s=30)
    statuses = sorted(o["status"] for o in outcomes)
    assert statuses.count("rejected") == 1 and statuses.count("duplicate") == 1 and "dead" in statuses
    logs = log_path.read_text() + cli_err
    assert "job.attempt_failed" in logs and "job.rejected" in logs, "the failure paths were logged"
    for secret in (SECRET, DEAD_SECRET):
        assert secret not in logs, f"webhook secret {secret!r} in the logs"
    for number in NUMBERS:
        for form in (number, number[1:], number[2:]):
            assert form not in logs, f"full number {form} in the logs"
    assert "+7911***4567" in logs, "numbers are logged masked"
    stored = json.dumps(outcomes)
    assert SECRET not in stored, "nor in an outcome"
