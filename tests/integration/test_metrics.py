"""Prometheus metrics of a real worker process after a scripted run."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families
from redis.asyncio import Redis

from ops.redis_server import free_port
from ops.sandbox import Fault, Sandbox, SandboxHandle
from schemas.store.keys import Keys
from tests.support.helpers import wait_for, wait_outcomes
from tests.support.processes import WorkerProcess, write_config

TEXT = "Callback request"


async def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as {(name, sorted labels): value}."""
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as resp:
        text = await resp.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_after_a_scripted_run(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle, tmp_path: Path
) -> None:
    """Two successes (one after a QUERY_LIMIT_EXCEEDED), one dead, one rejected: counters and gauges say so."""
    config = write_config(
        tmp_path / "callq.toml",
        {"default": {"webhook_url": portal.webhook_url("default"), "default_region": "RU"}},
    )
    port = free_port()
    sandbox.add_faults(
        [
            Fault.error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"),
            Fault.error(400, "ERROR_CORE", "Could not find config for number reg1332"),
        ]
    )
    entries = [
        {"from_line": "reg1332", "to_number": "+79111230001", "text_to_pronounce": TEXT},
        {"from_line": "reg1332", "to_number": "+79111230002", "text_to_pronounce": TEXT},
        {"from_line": "reg1332", "to_number": "+79111230003", "text_to_pronounce": TEXT},
        {"from_line": "reg1332"},
    ]
    with WorkerProcess(
        config=config,
        redis_url=redis_url,
        prefix=prefix,
        log_path=tmp_path / "w.log",
        extra_args=("--metrics-port", str(port), "--concurrency", "1"),
    ):
        for entry in entries:
            await redis.xadd(Keys(prefix).intake, {"job": json.dumps(entry)})
        await wait_outcomes(redis, prefix, 4, timeout_s=20)

        async def settled() -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
            try:
                samples = await scrape(port)
            except aiohttp.ClientError:
                return None
            return samples if samples.get(("callq_dead_letters", ())) == 1.0 else None

        m = await wait_for(settled, timeout_s=15, what="the gauges to refresh")
    d = (("portal", "default"),)
    assert m[("callq_jobs_finished_total", (*d, ("status", "succeeded")))] == 2
    assert m[("callq_jobs_finished_total", (*d, ("status", "dead")))] == 1
    assert m[("callq_attempts_total", (*d, ("result", "success")))] == 2
    assert m[("callq_attempts_total", (*d, ("result", "pause_portal")))] == 1
    assert m[("callq_attempts_total", (*d, ("result", "permanent")))] == 1
    assert m[("callq_retries_total", (("code", "QUERY_LIMIT_EXCEEDED"), *d))] == 1
    assert m[("callq_intake_entries_total", (("result", "scheduled"),))] == 3
    assert m[("callq_intake_entries_total", (("result", "rejected"),))] == 1
    assert m[("callq_bitrix_request_seconds_count", (("method", "voximplant.callback.start"), *d))] == 4
    assert m[("callq_worker_up", ())] == 1
    assert m[("callq_queue_depth", ())] == 0
    assert m[("callq_intake_lag_seconds", ())] == 0
