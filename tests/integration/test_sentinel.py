"""Redis Sentinel: workers follow a failover to the new master by themselves."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as sync_redis
from redis.asyncio import Redis

from ops.redis_server import RedisServer
from ops.sandbox import Sandbox, SandboxHandle
from schemas.store.connect import close_client, redis_client
from schemas.store.keys import Keys
from tests.support.helpers import wait_for
from tests.support.processes import WorkerProcess, write_config

TEXT = "Callback request"


@pytest.fixture
def sentinel_setup(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer, int]]:
    """A master, a replica and one sentinel watching them (quorum 1, fast failover)."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    (tmp_path / "m").mkdir()
    (tmp_path / "r").mkdir()
    # Redis 7 waits 5 s before a replica's first (diskless) sync by default
    master = RedisServer(tmp_path / "m", appendonly=True, extra_args=("--repl-diskless-sync-delay", "0"))
    master.start()
    replica = RedisServer(
        tmp_path / "r", appendonly=True, extra_args=("--replicaof", "127.0.0.1", str(master.port))
    )
    replica.start()
    conf = tmp_path / "sentinel.conf"
    conf.write_text(
        f"sentinel monitor callq 127.0.0.1 {master.port} 1\n"
        "sentinel down-after-milliseconds callq 1000\nsentinel failover-timeout callq 5000\n"
    )
    sentinel = RedisServer(tmp_path, config=conf, extra_args=("--sentinel",))
    try:
        sentinel.start()
        client = sync_redis.Redis(port=sentinel.port, socket_connect_timeout=0.2)
        try:
            assert client.execute_command("SENTINEL", "get-master-addr-by-name", "callq")  # type: ignore[no-untyped-call]
        finally:
            client.close()
        yield master, replica, sentinel.port
    finally:
        sentinel.stop()
        replica.stop()
        master.stop()


@pytest.mark.timeout(90)
async def test_worker_survives_a_sentinel_failover(
    sentinel_setup: tuple[RedisServer, RedisServer, int],
    sandbox: Sandbox,
    portal: SandboxHandle,
    tmp_path: Path,
) -> None:
    """Jobs through a Sentinel URL succeed before and after the master dies and the replica is promoted."""
    master, replica, sentinel_port = sentinel_setup
    url = f"redis+sentinel://127.0.0.1:{sentinel_port}/callq/0"
    prefix = "sentinel-test"
    config = write_config(
        tmp_path / "callq.toml",
        {"default": {"webhook_url": portal.webhook_url("default"), "default_region": "RU"}},
    )
    redis = redis_client(url)
    keys = Keys(prefix)

    async def push(numbers: range) -> None:
        for n in numbers:
            job = {"from_line": "reg1332", "to_number": f"+7911000{n:04d}", "text_to_pronounce": TEXT}
            await redis.xadd(keys.intake, {"job": json.dumps(job)})

    async def outcomes_at_least(count: int) -> bool:
        try:
            entries = await redis.xrange(keys.outcomes)
            finals = sum(fields.get(b"kind") != b"call_result" for _id, fields in entries)
            return bool(finals >= count)
        except (sync_redis.RedisError, OSError):
            return False

    worker = WorkerProcess(config=config, redis_url=url, prefix=prefix, log_path=tmp_path / "w.log")
    with worker:
        await push(range(10))
        await wait_for(lambda: outcomes_at_least(10), timeout_s=20, what="the first batch")
        # the replica has everything before the master dies (async replication could lose the tail)
        assert await redis.execute_command("WAIT", 1, 5000) == 1  # type: ignore[no-untyped-call]
        master.stop(kill=True)
        await close_client(redis)
        redis = redis_client(url)
        await wait_for(lambda: _master_is(redis, replica.port), timeout_s=30, what="the failover")
        await push(range(10, 20))
        await wait_for(lambda: outcomes_at_least(20), timeout_s=40, what="the second batch")
        assert worker.process is not None and worker.process.poll() is None, (
            "the worker reconnected by itself"
        )
    entries = await redis.xrange(keys.outcomes)
    await close_client(redis)
    statuses = [
        json.loads(fields[b"outcome"])["status"]
        for _id, fields in entries
        if fields.get(b"kind") != b"call_result"  # a job's call result repeats its outcome
    ]
    assert statuses == ["succeeded"] * 20
    numbers = [c.params["TO_NUMBER"] for c in sandbox.calls()]
    assert len(numbers) == len(set(numbers)) == 20


async def _master_is(redis: Redis, port: int) -> bool:
    """Whether the Sentinel client now reaches a master on ``port`` (the promoted replica)."""
    try:
        info = await redis.info("replication")
        return bool(
            info["role"] == "master" and redis.connection_pool.connection_kwargs.get("port", port) == port
        )
    except (sync_redis.RedisError, OSError):
        return False
