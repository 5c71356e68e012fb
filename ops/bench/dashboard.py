"""The dashboard's pages with many jobs waiting: each page's median answer time with 100,000 scheduled
jobs, and its ratio to the same page with 1,000 (the baseline, in the same run). A page that scanned
every job would take ~100 times as long; one that reads the per-portal indexes and counters stays
near 1.

In process: a private ``redis-server``, ``callq serve``'s application on a loopback port, one client
that logs in with a token. Jobs are admitted through the producer (``submit_many``), spread over the
next week; 1,000 dead letters and an hour of outcome counters are written too.
"""

from __future__ import annotations

import json
import re
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from ops.redis_server import RedisServer
from producers.api import Producer
from producers.http.app import create_app
from schemas.config import ApiToken, PortalConfig, Settings
from schemas.policy.hours import parse_hours
from schemas.states import Status, Step
from schemas.wire.codes import ErrorCode
from schemas.wire.outcome import OutcomeError, outcome_for

TOKEN = "bench-dashboard-token-0123"
REPEATS = 15


def _settings(redis_url: str, prefix: str) -> Settings:
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    always = parse_hours(dict.fromkeys(days, "00:00-24:00"), where="bench")
    portal = PortalConfig(
        name="default",
        webhook_url="http://127.0.0.1:9/rest/1/x/",
        oauth=None,
        timezone=ZoneInfo("UTC"),
        default_region="RU",
        hours=always,
    )
    return Settings(
        redis_url=redis_url,
        key_prefix=prefix,
        portals=MappingProxyType({"default": portal}),
        named_tokens=(ApiToken(name="bench", token=TOKEN, access="write"),),
    )


async def _fill(producer: Producer, count: int, *, dead: int) -> str:
    """``count`` scheduled jobs over the next week and ``dead`` dead ones; returns one job id."""
    now = datetime.now(UTC)
    step_s = 7 * 86400 / max(count, 1)
    sample = ""
    for start in range(0, count, 1000):
        entries = []
        for i in range(start, min(start + 1000, count)):
            job = {
                "portal": "default",
                "from_line": f"line{i % 5}",
                "to_number": f"+7911{i:07d}",
                "text_to_pronounce": f"Campaign {i % 97}",
                "not_before": (now + timedelta(seconds=60 + i * step_s)).isoformat(),
            }
            entries.append((json.dumps(job), producer.id_factory(), None))
        submitted = await producer.submit_many(entries)
        sample = sample or submitted[0].job_id
    ledger = producer.ledger
    error = OutcomeError(code=ErrorCode.OUTCOME_UNKNOWN, description="bench")
    for i in range(dead):
        made = await producer.enqueue(
            from_line="dead",
            to_number=f"+7922{i:07d}",
            text_to_pronounce="x",
            not_before=now + timedelta(days=2),
        )
        record = await ledger.read(made.job_id)
        assert record is not None
        outcome = outcome_for(record.job, Status.DEAD, at=datetime.now(UTC), attempts=1, error=error)
        await ledger.finalize(outcome, job=record.job, step=Step.FINISH)
    return sample


async def _page_times(client: TestClient[Any, Any], paths: dict[str, str]) -> dict[str, float]:
    times: dict[str, float] = {}
    for name, path in paths.items():
        samples = []
        for _ in range(REPEATS):
            began = time.perf_counter()
            async with client.get(path) as resp:
                await resp.read()
                assert resp.status == 200, (path, resp.status)
            samples.append((time.perf_counter() - began) * 1000)
        times[name] = statistics.median(samples)
    return times


async def _measure(redis_url: str, prefix: str, count: int) -> dict[str, float]:
    redis = Redis.from_url(redis_url)
    settings = _settings(redis_url, prefix)
    producer = Producer(redis, settings=settings, dedupe_and_pacing=False)
    sample = await _fill(producer, count, dead=min(1000, count))
    day = (datetime.now(UTC) + timedelta(days=3)).strftime("%Y-%m-%dT%H:%M")
    day_end = (datetime.now(UTC) + timedelta(days=3, hours=6)).strftime("%Y-%m-%dT%H:%M")
    paths = {
        "overview": "/dashboard/",
        "scheduled": "/dashboard/scheduled",
        "scheduled_deep_page": f"/dashboard/scheduled?cursor={count // 2}",
        "scheduled_time_range": f"/dashboard/scheduled?from={day}&to={day_end}",
        "scheduled_text": "/dashboard/scheduled?q=Campaign+42",
        "scheduled_line": "/dashboard/scheduled?line=line3",
        "dead": "/dashboard/dead",
        "job": f"/dashboard/jobs/{sample}",
    }
    try:
        async with TestClient(TestServer(create_app(redis=redis, settings=settings))) as client:
            async with client.post("/dashboard/login", data={"token": TOKEN}) as resp:
                assert resp.status == 200 and re.search("Overview", await resp.text())
            return await _page_times(client, paths)
    finally:
        await redis.aclose()


async def run(*, quick: bool) -> dict[str, Any]:
    """Measure; returns the figures (ms per page with many jobs, and the ratio to the baseline)."""
    many = 5_000 if quick else 100_000
    base = 1_000
    with tempfile.TemporaryDirectory(prefix="callq-bench-") as tmp, RedisServer(Path(tmp)) as server:
        baseline = await _measure(server.url, "bench-dash-base", base)
        loaded = await _measure(server.url, "bench-dash-many", many)
    figures: dict[str, Any] = {"scheduled_jobs": many, "baseline_jobs": base}
    for name, ms in loaded.items():
        figures[f"{name}_ms"] = round(ms, 1)
        figures[f"{name}_ratio"] = round(ms / baseline[name], 2)
    return figures
