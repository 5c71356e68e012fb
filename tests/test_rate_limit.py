"""The rate limit holds across worker processes, a busy portal never delays another, lines are paced."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxPortal, running_sandbox
from producers.api import Producer
from tests.helpers import make_settings, running_worker, sandbox_portal, wait_for, wait_outcomes
from tests.processes import WorkerProcess, write_config

TEXT = "Callback request"


@pytest.mark.slow
@pytest.mark.timeout(90)
async def test_three_processes_share_the_bucket(
    redis_url: str, prefix: str, redis: Redis, tmp_path: Path
) -> None:
    """3 workers, 30 jobs, a 2/s burst-5 portal: no QUERY_LIMIT_EXCEEDED and close to the ideal 12.5 s."""
    sandbox = Sandbox([SandboxPortal(name="default", webhooks={(1, "code")}, rate=2.0, burst=5)])
    async with running_sandbox(sandbox) as handle:
        url = handle.webhook_url("default")
        config = write_config(
            tmp_path / "callq.toml",
            {"default": {"webhook_url": url, "default_region": "RU", "rate": 2.0, "burst": 5}},
        )
        settings = make_settings(redis_url, prefix, {"default": sandbox_portal(url, rate=2.0, burst=5)})
        producer = Producer(redis, settings=settings)
        for n in range(30):
            await producer.enqueue(from_line="reg1332", to_number=f"+7911{n:07d}", text_to_pronounce=TEXT)
        workers = [
            WorkerProcess(config=config, redis_url=redis_url, prefix=prefix, log_path=tmp_path / f"w{i}.log")
            for i in range(3)
        ]
        try:
            for w in workers:
                w.start()
            outcomes = await wait_outcomes(redis, prefix, 30, timeout_s=40)
        finally:
            for w in workers:
                w.stop()
    requests = sandbox.calls()
    refused = [c for c in requests if c.status == 503]
    assert refused == [], f"{len(refused)} QUERY_LIMIT_EXCEEDED"
    assert sorted(o["status"] for o in outcomes) == ["succeeded"] * 30
    times = sorted(c.received_monotonic for c in requests)
    total = times[-1] - times[0]
    ideal = (30 - 5) / 2
    assert ideal * 0.98 <= total <= ideal * 1.10, f"took {total:.2f}s, ideal {ideal}s"


@pytest.mark.slow
async def test_a_busy_portal_does_not_delay_another(redis_url: str, prefix: str, redis: Redis) -> None:
    """1,000 jobs queued for a 2/s portal; a lone job on another portal is called within a second."""
    sandbox = Sandbox(
        [
            SandboxPortal(name="busy", webhooks={(1, "busy")}, rate=2.0, burst=50),
            SandboxPortal(name="lone", webhooks={(1, "lone")}, rate=2.0, burst=50),
        ]
    )
    async with running_sandbox(sandbox) as handle:
        portals = {name: sandbox_portal(handle.webhook_url(name), name=name) for name in ("busy", "lone")}
        settings = make_settings(redis_url, prefix, portals)
        producer = Producer(redis, settings=settings)
        for n in range(1000):
            await producer.enqueue(
                portal="busy", from_line="reg1332", to_number=f"+7911{n:07d}", text_to_pronounce=TEXT
            )
        async with running_worker(settings):
            started = time.monotonic()
            await producer.enqueue(
                portal="lone", from_line="reg1332", to_number="+79990001122", text_to_pronounce=TEXT
            )
            await wait_for(lambda: _called(sandbox, "lone"), timeout_s=5, what="the lone portal's call")
            lone_after = time.monotonic() - started
            busy_calls = len(sandbox.calls(portal="busy"))
    assert lone_after < 1.0, f"the lone job waited {lone_after:.2f}s"
    assert 40 <= busy_calls <= 60, "the busy portal ran at its burst, not faster"
    assert all(c.status == 200 for c in sandbox.calls())


async def _called(sandbox: Sandbox, portal: str) -> bool:
    return bool(sandbox.calls(portal=portal))


async def test_min_interval_paces_one_line_only(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: object
) -> None:
    """Callbacks on a line with `min_interval` start that far apart; another line is not held."""
    from schemas.config import LineConfig

    url = portal.webhook_url("default")  # type: ignore[attr-defined]
    interval = 0.8
    lines = {"reg1332": LineConfig(line_id="reg1332", min_interval_s=interval)}
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(url, lines=lines)})
    producer = Producer(redis, settings=settings)
    for n in range(4):
        await producer.enqueue(from_line="reg1332", to_number=f"+7911000000{n}", text_to_pronounce=TEXT)
        await producer.enqueue(from_line="reg1333", to_number=f"+7911000000{n}", text_to_pronounce=TEXT)
    async with running_worker(settings):
        await wait_outcomes(redis, prefix, 8, timeout_s=15)
    paced = sorted(c.received_monotonic for c in sandbox.calls() if c.params["FROM_LINE"] == "reg1332")
    free = sorted(c.received_monotonic for c in sandbox.calls() if c.params["FROM_LINE"] == "reg1333")
    gaps = [b - a for a, b in itertools.pairwise(paced)]
    assert len(paced) == 4 and min(gaps) >= interval - 0.02, gaps
    assert free[-1] - free[0] < interval, "the other line was not paced"
