"""Redis full (``maxmemory`` under ``noeviction``): workers ride it out and every job still ends once.

A private ``redis-server`` with a small ``maxmemory`` is filled by one big key (a Lua script: the
first write of a script passes the memory check, the rest follow it over the limit) and freed by
deleting it. Real worker processes, the in-process sandbox portal; assertions on the outcome stream,
the records, what the sandbox saw, the worker's log and its metrics.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from redis.exceptions import OutOfMemoryError
from structlog.testing import capture_logs

from ops.redis_server import RedisServer, free_port
from ops.sandbox import Fault, Sandbox, SandboxHandle, SandboxPortal, running_sandbox
from producers.api import Producer
from producers.http.app import create_app
from producers.stream import IntakeConsumer, entry_job_id
from schemas.store.errors import REDIS_FULL
from schemas.store.keys import INTAKE_GROUP, Keys
from tests.support.helpers import job_json, make_settings, read_outcomes, sandbox_portal, wait_for
from tests.support.processes import WorkerProcess, run_callq, write_config

TEXT = "Callback request"
TOKEN = "full-token-0123456789"
MAXMEMORY = ("--maxmemory", "24mb", "--maxmemory-policy", "noeviction")
BALLAST = "ballast-of-the-test"
FILL = "redis.call('SET', KEYS[1], string.rep('x', tonumber(ARGV[1]))) return 1"


async def fill(redis: Redis) -> None:
    """Put Redis over its maxmemory by a few megabytes, in one key."""
    memory = await redis.info("memory")
    size = int(memory["maxmemory"]) - int(memory["used_memory"]) + 4 * 2**20
    await redis.register_script(FILL)(keys=[BALLAST], args=[size])
    with pytest.raises(OutOfMemoryError):
        await redis.set("any-write", "1")


async def free(redis: Redis) -> None:
    """Delete the big key: Redis takes writes again."""
    await redis.delete(BALLAST)
    await redis.delete("any-write")


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server with a 24 MB maxmemory and noeviction, like the shipped redis.conf."""
    (tmp_path / "redis").mkdir()
    with RedisServer(tmp_path / "redis", extra_args=MAXMEMORY) as server:
        yield server


@pytest.fixture
async def client_of(full_redis: RedisServer) -> AsyncIterator[Redis]:
    """A client of that Redis."""
    client = Redis.from_url(full_redis.url)
    yield client
    await client.aclose()


def events(worker: WorkerProcess) -> list[dict[str, Any]]:
    """The worker's JSON log lines so far."""
    return [json.loads(line) for line in worker.log_text().splitlines() if line.startswith("{")]


def called(sandbox: Sandbox) -> Counter[str]:
    """How often the sandbox saw each number."""
    return Counter(str(call.params["TO_NUMBER"]) for call in sandbox.calls())


async def metric(port: int, name: str) -> float | None:
    """One unlabelled metric of a worker's /metrics."""
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith(f"{name} "):
                return float(line.split()[1])
    return None


def assert_calm(worker: WorkerProcess) -> None:
    """One redis.full line for the episode, no traceback, no error but the ones Redis full explains."""
    logged = events(worker)
    assert [e["event"] for e in logged].count("redis.full") == 1
    assert "Traceback" not in worker.log_text()
    assert not [e for e in logged if "exception" in e or "exc_info" in e], "no traceback logged"
    errors = {e["event"] for e in logged if e.get("level") == "error"}
    assert errors <= {"redis.full"}, errors


@pytest.mark.timeout(120)
async def test_jobs_in_flight_when_redis_fills_end_with_their_real_outcome(
    full_redis: RedisServer, client_of: Redis, prefix: str, tmp_path: Path
) -> None:
    """Redis fills while requests are in flight: the worker stays up, holds their results, claims
    nothing, says so once (log, gauge); once freed every job ends once, succeeded, each number called once."""
    redis, jobs = client_of, 12
    sandbox = Sandbox([SandboxPortal(name="default", webhooks={(1, "code")}, rate=1000.0, burst=1000)])
    sandbox.add_faults([Fault.delay(1.5)] * jobs)
    async with running_sandbox(sandbox) as handle:
        url = handle.webhook_url("default")
        config = write_config(
            tmp_path / "callq.toml", {"default": {"webhook_url": url, "default_region": "RU"}}
        )
        producer = Producer(
            redis, settings=make_settings(full_redis.url, prefix, {"default": sandbox_portal(url)})
        )
        numbers = [f"+7911{n:07d}" for n in range(jobs)]
        for number in numbers:
            await producer.enqueue(from_line="reg1332", to_number=number, text_to_pronounce=TEXT)
        port = free_port()
        extra = ("--concurrency", "4", "--metrics-port", str(port))
        worker = WorkerProcess(
            config=config,
            redis_url=full_redis.url,
            prefix=prefix,
            log_path=tmp_path / "w.log",
            extra_args=extra,
        )
        try:
            worker.start()

            async def requests_out() -> bool:
                return bool(sandbox.calls())

            await wait_for(requests_out, timeout_s=20, what="requests in flight")
            await fill(redis)

            async def results_held() -> bool:
                held = [
                    e for e in events(worker) if e["event"] == "redis.write_held" and e["where"] == "finalize"
                ]
                return len(held) == len(sandbox.calls())

            await wait_for(results_held, timeout_s=20, what="the requests in flight to come back and be held")
            full_gauge = await metric(port, "callq_redis_full")
            sent_while_full = len(sandbox.calls())
            outcomes_while_full = await redis.xlen(Keys(prefix).outcomes)
            alive_while_full = worker.process is not None and worker.process.poll() is None
            await free(redis)

            async def all_ended() -> bool:
                return int(await redis.xlen(Keys(prefix).outcomes)) >= jobs

            await wait_for(all_ended, timeout_s=60, poll_s=0.1, what=f"{jobs} outcomes")

            async def gauge_cleared() -> bool:
                return await metric(port, "callq_redis_full") == 0

            await wait_for(gauge_cleared, timeout_s=15, what="callq_redis_full back to 0")
            alive = worker.process is not None and worker.process.poll() is None
        finally:
            worker.stop()
    assert alive_while_full and alive, "the worker stayed up"
    assert full_gauge == 1
    assert outcomes_while_full == 0 and 1 <= sent_while_full <= 4, "nothing claimed or written while full"
    outcomes = await read_outcomes(redis, prefix)
    assert Counter(o["job_id"] for o in outcomes).most_common(1)[0][1] == 1, "one outcome per job"
    assert Counter(o["status"] for o in outcomes) == {"succeeded": jobs}, (
        "the real outcome, not OUTCOME_UNKNOWN"
    )
    assert called(sandbox) == Counter(dict.fromkeys(numbers, 1)), "each number called exactly once"
    assert_calm(worker)
    assert "redis.writable" in [e["event"] for e in events(worker)]


@pytest.mark.timeout(120)
async def test_a_worker_started_while_redis_is_full_waits_and_then_works(
    full_redis: RedisServer, client_of: Redis, prefix: str, tmp_path: Path
) -> None:
    """A worker started on a full Redis stays up (no crash loop) and, once memory is freed, runs the jobs
    and intake entries that waited, each called once."""
    redis = client_of
    sandbox = Sandbox([SandboxPortal(name="default", webhooks={(1, "code")}, rate=1000.0, burst=1000)])
    async with running_sandbox(sandbox) as handle:
        url = handle.webhook_url("default")
        config = write_config(
            tmp_path / "callq.toml", {"default": {"webhook_url": url, "default_region": "RU"}}
        )
        producer = Producer(
            redis, settings=make_settings(full_redis.url, prefix, {"default": sandbox_portal(url)})
        )
        queued = [f"+7912{n:07d}" for n in range(3)]
        for number in queued:
            await producer.enqueue(from_line="reg1332", to_number=number, text_to_pronounce=TEXT)
        streamed = [f"+7913{n:07d}" for n in range(3)]
        for number in streamed:
            await redis.xadd(Keys(prefix).intake, {"job": job_json(number)})
        await fill(redis)
        worker = WorkerProcess(
            config=config, redis_url=full_redis.url, prefix=prefix, log_path=tmp_path / "w.log"
        )
        try:
            worker.start()

            async def waiting() -> bool:
                names = [e["event"] for e in events(worker)]
                return "worker.started" in names and "redis.full" in names

            await wait_for(waiting, timeout_s=30, what="the worker to start and see Redis full")
            alive_while_full = worker.process is not None and worker.process.poll() is None
            calls_while_full = len(sandbox.calls())
            await free(redis)

            async def all_ended() -> bool:
                return int(await redis.xlen(Keys(prefix).outcomes)) >= 6

            await wait_for(all_ended, timeout_s=60, poll_s=0.1, what="6 outcomes")
            alive = worker.process is not None and worker.process.poll() is None
        finally:
            worker.stop()
    assert alive_while_full and alive
    assert calls_while_full == 0
    outcomes = await read_outcomes(redis, prefix)
    assert Counter(o["status"] for o in outcomes) == {"succeeded": 6}
    assert len({o["job_id"] for o in outcomes}) == 6
    assert called(sandbox) == Counter(dict.fromkeys(queued + streamed, 1))
    assert await redis.xlen(Keys(prefix).intake) == 0, "every entry acknowledged once admitted"
    assert_calm(worker)


async def test_the_intake_leaves_entries_unacknowledged_while_redis_is_full(
    full_redis: RedisServer, client_of: Redis, prefix: str
) -> None:
    """Entries read while Redis is full stay pending (nothing acknowledged, nothing recorded) and are
    admitted, once each, when it takes writes again."""
    redis = client_of
    settings = make_settings(
        full_redis.url, prefix, {"default": sandbox_portal("https://a.bitrix24.ru/rest/1/x/")}
    )
    keys = Keys(prefix)
    consumer = IntakeConsumer(redis, producer=Producer(redis, settings=settings), keys=keys, block_ms=10)
    await consumer.ensure_group()
    ids = [(await redis.xadd(keys.intake, {"job": job_json(f"+7914{n:07d}")})).decode() for n in range(3)]
    ids.append((await redis.xadd(keys.intake, {"job": "not json"})).decode())
    await fill(redis)
    with pytest.raises(OutOfMemoryError):
        await consumer.step()
    pending = await redis.xpending(keys.intake, INTAKE_GROUP)
    assert (pending["pending"], await redis.xlen(keys.intake), await redis.xlen(keys.outcomes)) == (4, 4, 0)
    await free(redis)
    assert await consumer.step(pending=True) == 4
    assert (await redis.xpending(keys.intake, INTAKE_GROUP))["pending"] == 0
    assert await redis.xlen(keys.intake) == 0
    outcomes = await read_outcomes(redis, prefix)
    assert [(o["intake_id"], o["status"]) for o in outcomes] == [(ids[3], "rejected")]
    for entry_id in ids[:3]:
        record = await consumer.producer.status(await entry_job_id(redis, keys, entry_id))
        assert record is not None and record.state == "scheduled"


async def test_producers_are_told_redis_is_full(
    full_redis: RedisServer, client_of: Redis, prefix: str, portal: SandboxHandle
) -> None:
    """HTTP answers 503 REDIS_FULL with Retry-After, /readyz names redis_writable, `callq enqueue` prints
    one line and exits 2; nothing is stored, no traceback, no number; all works again once freed."""
    redis = client_of
    url = portal.webhook_url("default")
    settings = make_settings(full_redis.url, prefix, {"default": sandbox_portal(url)}, api_tokens=(TOKEN,))
    job = {"from_line": "reg1332", "to_number": "+79115550000", "text_to_pronounce": TEXT}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    env = {
        "CALLQ_REDIS_URL": full_redis.url,
        "CALLQ_KEY_PREFIX": prefix,
        "CALLQ_WEBHOOK_URL": url,
        "CALLQ_TIMEZONE": "UTC",
    }
    env["PATH"] = "/usr/bin:/bin"
    cli = ["enqueue", "--line", "reg1332", "--to", "+79115550001", "--text", TEXT]
    async with TestClient(TestServer(create_app(redis=redis, settings=settings))) as client:
        await fill(redis)
        with capture_logs() as logs:
            answers = []
            for body in (job, {**job, "to_number": "nope"}):
                async with client.post("/v1/callbacks", json=body, headers=auth) as resp:
                    answers.append(
                        (resp.status, resp.headers.get("Retry-After"), (await resp.json())["error"]["code"])
                    )
            async with client.get("/readyz") as resp:
                ready = (resp.status, (await resp.json())["checks"])
        code, out, err = await run_callq(cli, env)
        stored_while_full = await redis.zcard(Keys(prefix).queue), await redis.xlen(Keys(prefix).outcomes)
        await free(redis)
        async with client.post("/v1/callbacks", json=job, headers=auth) as resp:
            after = resp.status
        async with client.get("/readyz") as resp:
            writable_after = (await resp.json())["checks"]["redis_writable"]
    assert answers == [(503, "30", "REDIS_FULL"), (503, "30", "REDIS_FULL")]
    assert (
        ready[0] == 503
        and ready[1]["redis"] == "ok"
        and ready[1]["redis_writable"].startswith("no: Redis is full")
    )
    assert [e["event"] for e in logs if e["event"] != "http.request"] == [
        "http.redis_full",
        "http.redis_full",
    ]
    assert not [e for e in logs if "exc_info" in e or e.get("log_level") == "error"]
    assert "5550000" not in repr(logs)
    assert (code, out) == (2, "")
    assert err == f"callq enqueue: {REDIS_FULL}\n"
    assert stored_while_full == (0, 0)
    assert (after, writable_after) == (202, "ok")
