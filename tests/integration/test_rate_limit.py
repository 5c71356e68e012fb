"""The rate limit holds across worker processes: three of them share one portal's bucket (pacing in one
worker: ``tests/worker/jobs/test_pacing.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxPortal, running_sandbox
from producers.api import Producer
from tests.support.helpers import TEXT, make_settings, sandbox_portal, wait_outcomes
from tests.support.processes import new_worker, write_config


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
        workers = [new_worker(tmp_path, config, redis_url, prefix, f"w{i}") for i in range(3)]
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
