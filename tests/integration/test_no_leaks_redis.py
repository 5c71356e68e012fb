"""Nothing callq prints or logs holds the Redis password or a full number when Redis fails (issue 11).

A script that fails makes redis-py raise an error whose message quotes the command with its
arguments (a job's JSON, a claim key: the number); a Redis filled to maxmemory with noeviction
refuses every write; a missing Redis, a Sentinel URL with no Sentinel and a wrong password make
every command say so. Real processes; see ``tests/integration/test_no_leaks.py``.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ops.redis_server import RedisServer, free_port
from ops.sandbox import SandboxHandle
from schemas.store.keys import Keys
from tests.support.helpers import TEXT, wait_outcomes
from tests.support.leaks import API_TOKEN, REDIS_PASSWORD, Written, job
from tests.support.processes import WorkerProcess, callq_env, until_logged, write_config


@pytest.mark.timeout(150)
async def test_redis_refusals_leak_nothing_through_redis_py_errors(
    prefix: str, portal: SandboxHandle, tmp_path: Path
) -> None:
    """A script error (its EVALSHA arguments, a job's JSON, in the traceback) and a full Redis show no number."""
    poisoned, enqueued, full = "+79133456789", "+79134567890", ["+79135678901", "+79136789012"]
    written = Written(
        secrets={REDIS_PASSWORD, "sandboxsecret"}, numbers={poisoned, enqueued, *full, "+79137890123"}
    )
    config = write_config(
        tmp_path / "callq.toml",
        {"default": {"webhook_url": portal.webhook_url("default"), "default_region": "RU"}},
    )
    keys = Keys(prefix)
    enqueue = ["enqueue", "--line", "reg1332", "--text", TEXT, "--to"]
    with RedisServer(
        tmp_path, password=REDIS_PASSWORD, extra_args=("--maxmemory-policy", "noeviction")
    ) as server:
        redis = Redis.from_url(server.url)
        env = callq_env(CALLQ_CONFIG=str(config), CALLQ_REDIS_URL=server.url, CALLQ_KEY_PREFIX=prefix)
        worker = WorkerProcess(
            config=config, redis_url=server.url, prefix=prefix, log_path=tmp_path / "w.log", log_level="DEBUG"
        )
        try:
            with worker:
                await until_logged(worker, "worker.started", timeout_s=30)
                # a claim key of the wrong type fails the ADMIT script: redis-py's error quotes its arguments
                claim = keys.claim("default", "reg1332", poisoned)
                await redis.lpush(claim, "not a claim")
                await redis.xadd(keys.intake, {"job": job(poisoned)})
                await until_logged(worker, "intake.failed", timeout_s=30)
                assert (await written.cli([*enqueue, poisoned], env))[0] == 2
                await redis.delete(claim)
                worker.signal(signal.SIGSTOP)  # these entries must reach it only once Redis is full
                for number in full:
                    await redis.xadd(keys.intake, {"job": job(number)})
                await redis.config_set("maxmemory", 1)
                worker.signal(signal.SIGCONT)
                code, _, err = await written.cli([*enqueue, enqueued], env)
                assert code == 2 and "Redis is full" in err
                await until_logged(worker, "redis.full", timeout_s=30)
                await redis.config_set("maxmemory", 0)
                await wait_outcomes(redis, prefix, 1 + len(full), timeout_s=60)  # nothing was lost meanwhile
        finally:
            await redis.aclose()
    log = written.add("worker log", worker.log_text())
    assert "EVALSHA" in log and "WRONGTYPE" in log, (
        "redis-py's error, with the script's arguments, was logged"
    )
    leaks = written.leaks()
    assert not leaks, "\n".join(leaks)


@pytest.mark.timeout(180)
async def test_redis_password_is_never_shown_when_redis_fails(portal: SandboxHandle, tmp_path: Path) -> None:
    """No Redis, a Sentinel URL with no Sentinel, a wrong password: every command says so without the password."""
    written = Written(secrets={REDIS_PASSWORD, API_TOKEN, "sandboxsecret"}, numbers={"+79138901234"})
    closed = free_port()
    with RedisServer(tmp_path, password="an0therPa55word") as server:
        urls = [
            f"redis://:{REDIS_PASSWORD}@127.0.0.1:{closed}/0",
            f"redis+sentinel://:{REDIS_PASSWORD}@127.0.0.1:{closed}/callq/0",
            f"redis://callq:{REDIS_PASSWORD}@127.0.0.1:{server.port}/0",
        ]
        commands = [
            ["enqueue", "--line", "reg1332", "--to", "+79138901234", "--text", TEXT],
            ["list"],
            ["status", "x"],
            ["dead", "list"],
            ["resume", "default"],
            ["worker"],
            ["serve", "--port", str(free_port())],
        ]
        for n, url in enumerate(urls):
            env = callq_env(
                CALLQ_REDIS_URL=url,
                CALLQ_WEBHOOK_URL=portal.webhook_url("default"),
                CALLQ_TIMEZONE="UTC",
                CALLQ_API_TOKENS=API_TOKEN,
            )
            for args in commands if n == 0 else commands[::3]:
                code, _, err = await written.cli(args, env)
                assert code == 2 and "callq:" in err, (args, err)
        env = callq_env(CALLQ_WEBHOOK_URL=portal.webhook_url("default"), CALLQ_TIMEZONE="UTC")
        code, _, err = await written.cli(["--redis-url", urls[0], "list"], env)
        assert code == 2 and ":***@" in err
    leaks = written.leaks()
    assert not leaks, "\n".join(leaks)
