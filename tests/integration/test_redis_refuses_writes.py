"""Redis refusing writes for other reasons than memory (``MISCONF``, ``READONLY``, ``NOREPLICAS``) is
ridden out exactly as a full Redis is (:mod:`tests.integration.test_redis_full`): workers stay up, say
so, and resume by themselves; producers are told 503 / one line; a refused write in a claimed job
never stops arq's poll loop.

A private ``redis-server`` made to refuse by :mod:`tests.support.refusals`; real worker processes, the
in-process sandbox portal; assertions on the outcome stream, what the sandbox saw, the log and metrics.
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
from arq.connections import RedisSettings, create_pool
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis
from structlog.testing import capture_logs

from ops.redis_server import RedisServer, free_port
from ops.sandbox import Fault, Sandbox, SandboxHandle, SandboxPortal, running_sandbox
from producers.api import Producer
from producers.http.app import create_app
from schemas.store.errors import REFUSALS, Refusal
from schemas.store.keys import Keys
from tests.support.arq_workers import claim_worker, enqueue_one, ok
from tests.support.helpers import job_json, make_settings, read_outcomes, sandbox_portal, wait_for
from tests.support.processes import WorkerProcess, run_callq, write_config
from tests.support.refusals import REASONS, SERVER_ARGS, allow, refuse, unblock

TEXT = "Callback request"
TOKEN = "refusal-token-0123456789"


@pytest.fixture(params=REASONS, ids=[str(r) for r in REASONS])
def refusal(request: pytest.FixtureRequest) -> Refusal:
    """Each way Redis refuses writes, other than being full."""
    reason: Refusal = request.param
    return reason


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server whose writes the test can make it refuse."""
    (tmp_path / "redis").mkdir()
    with RedisServer(tmp_path / "redis", extra_args=SERVER_ARGS) as started:
        try:
            yield started
        finally:
            unblock(started)


@pytest.fixture
async def client_of(server: RedisServer) -> AsyncIterator[Redis]:
    """A client of that Redis."""
    client = Redis.from_url(server.url)
    yield client
    await client.aclose()


def events(worker: WorkerProcess) -> list[dict[str, Any]]:
    """The worker's JSON log lines so far."""
    return [json.loads(line) for line in worker.log_text().splitlines() if line.startswith("{")]


def called(sandbox: Sandbox) -> Counter[str]:
    """How often the sandbox saw each number."""
    return Counter(str(call.params["TO_NUMBER"]) for call in sandbox.calls())


async def refused_gauge(port: int, refusal: Refusal) -> float | None:
    """``callq_redis_writes_refused{reason=...}`` of a worker's /metrics."""
    wanted = f'callq_redis_writes_refused{{reason="{refusal}"}} '
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith(wanted):
                return float(line.split()[1])
    return None


def assert_calm(worker: WorkerProcess, refusal: Refusal) -> None:
    """One redis.writes_refused line (with its reason) for the episode, no traceback, no other error."""
    logged = events(worker)
    refused = [e for e in logged if e["event"] == "redis.writes_refused"]
    assert len(refused) == 1 and refused[0]["reason"] == str(refusal), refused
    assert "Traceback" not in worker.log_text()
    assert not [e for e in logged if "exception" in e or "exc_info" in e], "no traceback logged"
    errors = {e["event"] for e in logged if e.get("level") == "error"}
    assert errors <= {"redis.writes_refused"}, errors
    assert "redis.writable" in [e["event"] for e in logged]


@pytest.mark.timeout(120)
async def test_jobs_in_flight_when_redis_refuses_writes_end_with_their_real_outcome(
    server: RedisServer, client_of: Redis, refusal: Refusal, prefix: str, tmp_path: Path
) -> None:
    """Redis starts refusing writes while requests are in flight: the worker stays up, holds their
    results, says so (log, gauge with the reason); once it takes writes again every job ends once,
    succeeded, each number called once."""
    redis, jobs = client_of, 6
    sandbox = Sandbox([SandboxPortal(name="default", webhooks={(1, "code")}, rate=1000.0, burst=1000)])
    sandbox.add_faults([Fault.delay(1.5)] * jobs)
    async with running_sandbox(sandbox) as handle:
        url = handle.webhook_url("default")
        config = write_config(
            tmp_path / "callq.toml", {"default": {"webhook_url": url, "default_region": "RU"}}
        )
        producer = Producer(
            redis, settings=make_settings(server.url, prefix, {"default": sandbox_portal(url)})
        )
        numbers = [f"+7911{n:07d}" for n in range(jobs)]
        for number in numbers:
            await producer.enqueue(from_line="reg1332", to_number=number, text_to_pronounce=TEXT)
        port = free_port()
        extra = ("--concurrency", "3", "--metrics-port", str(port))
        worker = WorkerProcess(
            config=config, redis_url=server.url, prefix=prefix, log_path=tmp_path / "w.log", extra_args=extra
        )
        try:
            worker.start()
            await wait_for(lambda: bool(sandbox.calls()), timeout_s=20, what="requests in flight")
            await refuse(redis, refusal)

            async def results_held() -> bool:
                held = [
                    e for e in events(worker) if e["event"] == "redis.write_held" and e["where"] == "finalize"
                ]
                return len(held) == len(sandbox.calls())

            await wait_for(results_held, timeout_s=20, what="the requests in flight to come back and be held")
            gauge_while_refused = await refused_gauge(port, refusal)
            sent_while_refused = len(sandbox.calls())
            outcomes_while_refused = await redis.xlen(Keys(prefix).outcomes)
            alive_while_refused = worker.process is not None and worker.process.poll() is None
            await allow(redis, refusal, server.workdir)

            async def all_ended() -> bool:
                return int(await redis.xlen(Keys(prefix).outcomes)) >= jobs

            await wait_for(all_ended, timeout_s=60, poll_s=0.1, what=f"{jobs} outcomes")

            async def gauge_cleared() -> bool:
                return await refused_gauge(port, refusal) == 0

            await wait_for(gauge_cleared, timeout_s=15, what="callq_redis_writes_refused back to 0")
            alive = worker.process is not None and worker.process.poll() is None
        finally:
            worker.stop()
    assert alive_while_refused and alive, "the worker stayed up"
    assert gauge_while_refused == 1
    assert outcomes_while_refused == 0 and 1 <= sent_while_refused <= 3, (
        "nothing claimed or written meanwhile"
    )
    outcomes = await read_outcomes(redis, prefix)
    assert Counter(o["job_id"] for o in outcomes).most_common(1)[0][1] == 1, "one outcome per job"
    assert Counter(o["status"] for o in outcomes) == {"succeeded": jobs}, (
        "the real outcome, not OUTCOME_UNKNOWN"
    )
    assert called(sandbox) == Counter(dict.fromkeys(numbers, 1)), "each number called exactly once"
    assert_calm(worker, refusal)


@pytest.mark.timeout(120)
async def test_a_worker_started_while_redis_refuses_writes_waits_and_then_works(
    server: RedisServer, client_of: Redis, refusal: Refusal, prefix: str, tmp_path: Path
) -> None:
    """A worker started while Redis refuses writes stays up (no crash loop) and, once it takes writes
    again, runs the jobs and intake entries that waited, each called once."""
    redis = client_of
    sandbox = Sandbox([SandboxPortal(name="default", webhooks={(1, "code")}, rate=1000.0, burst=1000)])
    async with running_sandbox(sandbox) as handle:
        url = handle.webhook_url("default")
        config = write_config(
            tmp_path / "callq.toml", {"default": {"webhook_url": url, "default_region": "RU"}}
        )
        producer = Producer(
            redis, settings=make_settings(server.url, prefix, {"default": sandbox_portal(url)})
        )
        queued = [f"+7912{n:07d}" for n in range(2)]
        for number in queued:
            await producer.enqueue(from_line="reg1332", to_number=number, text_to_pronounce=TEXT)
        streamed = [f"+7913{n:07d}" for n in range(2)]
        for number in streamed:
            await redis.xadd(Keys(prefix).intake, {"job": job_json(number)})
        await refuse(redis, refusal)
        worker = WorkerProcess(
            config=config, redis_url=server.url, prefix=prefix, log_path=tmp_path / "w.log"
        )
        try:
            worker.start()

            async def waiting() -> bool:
                names = [e["event"] for e in events(worker)]
                return "worker.started" in names and "redis.writes_refused" in names

            await wait_for(waiting, timeout_s=30, what="the worker to start and see Redis refuse writes")
            alive_while_refused = worker.process is not None and worker.process.poll() is None
            calls_while_refused = len(sandbox.calls())
            await allow(redis, refusal, server.workdir)

            async def all_ended() -> bool:
                return int(await redis.xlen(Keys(prefix).outcomes)) >= 4

            await wait_for(all_ended, timeout_s=60, poll_s=0.1, what="4 outcomes")
            alive = worker.process is not None and worker.process.poll() is None
        finally:
            worker.stop()
    assert alive_while_refused and alive
    assert calls_while_refused == 0
    outcomes = await read_outcomes(redis, prefix)
    assert Counter(o["status"] for o in outcomes) == {"succeeded": 4}
    assert called(sandbox) == Counter(dict.fromkeys(queued + streamed, 1))
    assert await redis.xlen(Keys(prefix).intake) == 0, "every entry acknowledged once admitted"
    assert_calm(worker, refusal)


async def test_producers_are_told_redis_refuses_writes(
    server: RedisServer, client_of: Redis, refusal: Refusal, prefix: str, portal: SandboxHandle
) -> None:
    """HTTP answers 503 REDIS_REFUSES_WRITES (with the reason) and Retry-After, /readyz says why,
    `callq enqueue` prints one line and exits 2; nothing is stored; all works again afterwards."""
    redis = client_of
    url = portal.webhook_url("default")
    settings = make_settings(server.url, prefix, {"default": sandbox_portal(url)}, api_tokens=(TOKEN,))
    job = {"from_line": "reg1332", "to_number": "+79115550000", "text_to_pronounce": TEXT}
    auth = {"Authorization": f"Bearer {TOKEN}"}
    env = {
        "CALLQ_REDIS_URL": server.url,
        "CALLQ_KEY_PREFIX": prefix,
        "CALLQ_WEBHOOK_URL": url,
        "CALLQ_TIMEZONE": "UTC",
        "PATH": "/usr/bin:/bin",
    }
    cli = ["enqueue", "--line", "reg1332", "--to", "+79115550001", "--text", TEXT]
    async with TestClient(TestServer(create_app(redis=redis, settings=settings))) as client:
        await refuse(redis, refusal)
        with capture_logs() as logs:
            async with client.post("/v1/callbacks", json=job, headers=auth) as resp:
                answer = (resp.status, resp.headers.get("Retry-After"), await resp.json())
            async with client.get("/readyz") as resp:
                ready = (resp.status, (await resp.json())["checks"])
        code, out, err = await run_callq(cli, env)
        stored = await redis.zcard(Keys(prefix).queue), await redis.xlen(Keys(prefix).outcomes)
        await allow(redis, refusal, server.workdir)
        async with client.post("/v1/callbacks", json=job, headers=auth) as resp:
            after = resp.status
    status, retry_after, body = answer
    assert (status, retry_after, body["error"]["code"], body["reason"]) == (
        503,
        "30",
        "REDIS_REFUSES_WRITES",
        str(refusal),
    )
    assert ready[0] == 503 and ready[1]["redis"] == "ok" and ready[1]["redis_writable"].startswith("no: ")
    assert [e["event"] for e in logs if e["event"] != "http.request"] == ["http.redis_refuses_writes"]
    assert not [e for e in logs if "exc_info" in e or e.get("log_level") == "error"]
    assert (code, out) == (2, "")
    assert err == f"callq enqueue: {REFUSALS[refusal]}\n"
    assert stored == (0, 0)
    assert after == 202


async def test_a_refused_write_in_a_claimed_job_does_not_stop_the_poll_loop(
    server: RedisServer, client_of: Redis, refusal: Refusal, prefix: str
) -> None:
    """A job claimed just before Redis refused writes: its run ends without raising (arq's poll loop
    re-raises a task's exception via ``t.result()``), the gate says why, and the next poll iterations
    run; once Redis takes writes again the job runs."""
    queue = f"{prefix}:queue"
    pool = await create_pool(RedisSettings.from_dsn(server.url), default_queue_name=queue)
    worker = claim_worker(pool, queue, ok, poll_delay=0.01, burst=True)
    try:
        job_id = f"{prefix}:1"
        score = await enqueue_one(pool, queue, "job", job_id)
        await pool.set(in_progress_key_prefix + job_id, "claimed", px=60_000)  # as the claim does
        await refuse(client_of, refusal)
        await worker._start(job_id, str(score))  # what the claim does next
        await worker.tasks[job_id]
        for _ in range(3):
            await worker._poll_iteration()  # arq's loop: t.result() of the finished task
        refused_as = worker.gate.refusal
        await allow(client_of, refusal, server.workdir)
        await pool.delete(in_progress_key_prefix + job_id)  # its claim would lapse with its lease
        await worker.main()  # burst: runs what is due, then returns
    finally:
        await worker.close()
        await pool.aclose()
    assert refused_as is refusal
    assert worker.jobs_complete == 1
