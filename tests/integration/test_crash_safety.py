"""Crash safety: workers killed or stopped mid-request, a Redis restart, a flood of malformed entries.

Real ``callq worker`` processes run against the in-process sandbox portal; the tests assert on what
the sandbox recorded and on ``{p}:outcomes``: one outcome per job, no number rung twice by accident.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from ops.redis_server import RedisServer
from ops.sandbox import Fault, Sandbox, SandboxHandle, SandboxPortal, running_sandbox
from producers.api import Producer
from producers.stream import entry_job_id
from schemas.states import Status
from schemas.store.keys import Keys
from tests.support.helpers import (
    TEXT,
    called_numbers,
    job_json,
    make_settings,
    read_outcomes,
    sandbox_portal,
    wait_for,
    wait_outcomes,
)
from tests.support.processes import (
    SHORT_TIMEOUTS,
    exit_code,
    new_worker,
    stop_all,
    until_logged,
    write_config,
)

NUMBER = "+79111234567"


def vm_kb(pid: int, field: str) -> int:
    """A ``/proc/<pid>/status`` figure in kB (VmRSS: resident now; VmHWM: peak resident)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/{pid}/status")


async def _called(sandbox: Sandbox) -> bool:
    return bool(sandbox.calls())


@pytest.mark.timeout(60)
@pytest.mark.parametrize("retry_unknown", [False, True], ids=["default", "retry_unknown"])
async def test_sigkill_mid_request_never_rings_twice_unless_told_to(
    retry_unknown: bool,
    redis_url: str,
    prefix: str,
    redis: Redis,
    sandbox: Sandbox,
    portal: SandboxHandle,
    tmp_path: Path,
) -> None:
    """A worker SIGKILLed mid-request: the job ends dead/OUTCOME_UNKNOWN after one call (re-sent once with retry_unknown)."""
    url = portal.webhook_url("default")
    config = write_config(
        tmp_path / "callq.toml",
        {"default": {"webhook_url": url, "default_region": "RU", "retry_unknown": retry_unknown}},
    )
    producer = Producer(redis, settings=make_settings(redis_url, prefix, {"default": sandbox_portal(url)}))
    sandbox.add_faults([Fault.hang()])
    job = await producer.enqueue(from_line="reg1332", to_number=NUMBER, text_to_pronounce=TEXT)
    first = new_worker(tmp_path, config, redis_url, prefix, "first", *SHORT_TIMEOUTS)
    second = new_worker(tmp_path, config, redis_url, prefix, "second", *SHORT_TIMEOUTS)
    try:
        first.start()
        await wait_for(lambda: _called(sandbox), timeout_s=20, poll_s=0.01, what="the request")
        first.kill()
        record = await producer.status(job.job_id)
        assert record is not None and record.state == Status.RUNNING, "killed before the 1 s request timeout"
        second.start()
        (outcome,) = await wait_outcomes(redis, prefix, 1, timeout_s=30)
    finally:
        await stop_all(first, second)
    assert len(await read_outcomes(redis, prefix)) == 1
    if retry_unknown:
        assert (outcome["status"], outcome["attempts"]) == ("succeeded", 2), outcome
        assert called_numbers(sandbox) == [NUMBER, NUMBER]
    else:
        assert outcome["status"] == "dead", outcome
        assert outcome["error"]["code"] == "OUTCOME_UNKNOWN"
        assert "interrupted" in outcome["error"]["description"]
        assert called_numbers(sandbox) == [NUMBER]


async def test_sigterm_finishes_the_request_in_flight_and_takes_no_new_job(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle, tmp_path: Path
) -> None:
    """SIGTERM during a 2 s request: it succeeds, the process exits 0, and work sent after the signal waits."""
    url = portal.webhook_url("default")
    config = write_config(tmp_path / "callq.toml", {"default": {"webhook_url": url, "default_region": "RU"}})
    producer = Producer(redis, settings=make_settings(redis_url, prefix, {"default": sandbox_portal(url)}))
    sandbox.add_faults([Fault.delay(2.0)])
    job = await producer.enqueue(from_line="reg1332", to_number=NUMBER, text_to_pronounce=TEXT)
    worker = new_worker(tmp_path, config, redis_url, prefix, "worker", "--request-timeout", "5")
    try:
        worker.start()
        await wait_for(lambda: _called(sandbox), timeout_s=20, poll_s=0.01, what="the request")
        worker.signal(signal.SIGTERM)
        signalled = time.monotonic()
        await until_logged(worker, "worker.stopping", timeout_s=2)
        later = await producer.enqueue(from_line="reg1332", to_number="+79111234568", text_to_pronounce=TEXT)
        entry_id = (await redis.xadd(Keys(prefix).intake, {"job": job_json("+79111234569")})).decode()
        code = await exit_code(worker, timeout_s=10)
        took_s = time.monotonic() - signalled
    finally:
        await stop_all(worker)
    assert code == 0
    assert took_s < 4.0, f"exited {took_s:.1f}s after SIGTERM"
    outcomes = [(o["job_id"], o["status"]) for o in await read_outcomes(redis, prefix)]
    assert outcomes == [(job.job_id, "succeeded")], "the request in flight finished, nothing else ran"
    assert called_numbers(sandbox) == [NUMBER]
    waiting = await producer.status(later.job_id)
    assert waiting is not None and waiting.state == Status.SCHEDULED
    entry = await producer.status(await entry_job_id(redis, Keys(prefix), entry_id))
    if entry is None:
        assert await redis.xlen(Keys(prefix).intake) == 1, "the intake entry waits for the next worker"
    else:  # an intake read already under way when the signal came may admit it: stored, not run
        assert entry.state == Status.SCHEDULED


@pytest.mark.timeout(60)
async def test_second_sigterm_exits_at_once_and_the_job_ends_outcome_unknown(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle, tmp_path: Path
) -> None:
    """A second SIGTERM while a request hangs exits at once; the next worker ends the job dead/OUTCOME_UNKNOWN."""
    url = portal.webhook_url("default")
    config = write_config(tmp_path / "callq.toml", {"default": {"webhook_url": url, "default_region": "RU"}})
    producer = Producer(redis, settings=make_settings(redis_url, prefix, {"default": sandbox_portal(url)}))
    sandbox.add_faults([Fault.hang()])
    job = await producer.enqueue(from_line="reg1332", to_number=NUMBER, text_to_pronounce=TEXT)
    timeouts = ("--request-timeout", "10", "--lease", "3")
    first = new_worker(tmp_path, config, redis_url, prefix, "first", *timeouts)
    second = new_worker(tmp_path, config, redis_url, prefix, "second", *timeouts)
    try:
        first.start()
        await wait_for(lambda: _called(sandbox), timeout_s=20, poll_s=0.01, what="the request")
        first.signal(signal.SIGTERM)
        await until_logged(first, "worker.stopping", timeout_s=2)
        first.signal(signal.SIGTERM)
        signalled = time.monotonic()
        await exit_code(first, timeout_s=8)
        took_s = time.monotonic() - signalled
        record = await producer.status(job.job_id)
        assert record is not None and record.state == Status.RUNNING, "the request was cut off, not finished"
        second.start()
        (outcome,) = await wait_outcomes(redis, prefix, 1, timeout_s=35)
    finally:
        await stop_all(first, second)
    assert took_s < 3.0, f"exited {took_s:.1f}s after the second SIGTERM (request timeout 10 s)"
    assert '"event": "job.result_unwritten"' in first.log_text(), "the cut-off request is named in the log"
    assert outcome["status"] == "dead", outcome
    assert outcome["error"]["code"] == "OUTCOME_UNKNOWN"
    assert len(await read_outcomes(redis, prefix)) == 1
    assert called_numbers(sandbox) == [NUMBER]


@pytest.mark.timeout(60)
async def test_worker_rides_out_a_redis_restart(prefix: str, tmp_path: Path) -> None:
    """Redis restarted mid-run: all 50 intake jobs succeed once each, and the same worker process carries on."""
    jobs = 50
    sandbox = Sandbox([SandboxPortal(name="default", webhooks={(1, "code")}, rate=10.0, burst=5)])
    with RedisServer(tmp_path, appendonly=True) as server:
        redis = Redis.from_url(
            server.url,
            retry=Retry(ExponentialBackoff(cap=1.0), retries=20),
            retry_on_error=[RedisConnectionError],
        )
        async with running_sandbox(sandbox) as handle:
            config = write_config(
                tmp_path / "callq.toml",
                {
                    "default": {
                        "webhook_url": handle.webhook_url("default"),
                        "default_region": "RU",
                        "rate": 10.0,
                        "burst": 5,
                    }
                },
            )
            worker = new_worker(tmp_path, config, server.url, prefix, "worker")
            try:
                worker.start()
                async with redis.pipeline(transaction=False) as pipe:
                    for n in range(jobs):
                        pipe.xadd(Keys(prefix).intake, {"job": job_json(f"+7911{n:07d}")})
                    entry_ids = {raw.decode() for raw in await pipe.execute()}
                before = await wait_outcomes(redis, prefix, 10, timeout_s=20)
                await asyncio.to_thread(server.restart)
                restarted = time.monotonic()
                outcomes = await wait_outcomes(redis, prefix, jobs, timeout_s=40)
                alive = worker.process is not None and worker.process.poll() is None
            finally:
                await stop_all(worker)
                await redis.aclose()
    assert len(before) < jobs, "Redis restarted in the middle of the run"
    assert any(c.received_monotonic > restarted for c in sandbox.calls()), "calls went on after the restart"
    assert alive, "the worker process reconnected by itself"
    per_entry = Counter(o.get("intake_id") for o in outcomes)
    assert set(per_entry) == entry_ids and set(per_entry.values()) == {1}
    assert Counter(o["status"] for o in outcomes) == {"succeeded": jobs}
    numbers = called_numbers(sandbox)
    assert len(numbers) == jobs and len(set(numbers)) == jobs
    print(f"redis restart: redis_lost logged={'worker.redis_lost' in worker.log_text()}")


BASE = {"from_line": "reg1332", "to_number": "+79119990000", "text_to_pronounce": TEXT}
"""A valid job: each malformed kind below breaks it in one way."""


def _with(**changes: Any) -> str:
    return json.dumps({**BASE, **changes})


INVALID_UTF8 = (b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80abc")


def _nested(rng: random.Random) -> str:
    depth = rng.randint(50, 5000)  # json.loads alone raises RecursionError from about 1,000 levels
    if rng.random() < 0.5:
        return _with(to_number="x")[:-1] + ', "metadata": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    return _with()[:-1] + ', "extra": ' + "[" * depth + "]" * depth + "}"


MALFORMED: dict[str, Callable[[random.Random], bytes | str]] = {
    "random_bytes": lambda rng: rng.randbytes(rng.randint(1, 300)),
    "invalid_utf8": lambda rng: _with(from_line="@").encode().replace(b"@", rng.choice(INVALID_UTF8)),
    "not_an_object": lambda rng: rng.choice(["5", "null", "[]", '"job"', "true", "", "{", "{}}", "\x00"]),
    "wrong_types": lambda rng: _with(from_line=rng.choice([5, None, [], {}]), to_number=79119990000),
    "bad_values": lambda rng: _with(**{rng.choice(["to_number", "not_before", "deadline", "portal"]): "bad"}),
    "unknown_field": lambda rng: _with(**{f"extra_{rng.randint(0, 99)}": 1}),
    "huge_field": lambda rng: _with(
        **{rng.choice(["from_line", "text_to_pronounce"]): "x" * int(10 ** rng.uniform(3.5, 5))}
    ),
    "huge_metadata": lambda rng: _with(metadata={"blob": "y" * int(10 ** rng.uniform(3.7, 5))}),
    "nested": _nested,
}
"""How to make the ``job`` value of each malformed kind."""


def malformed_entries(count: int, rng: random.Random) -> Iterator[tuple[str, dict[str, bytes | str]]]:
    """``count`` intake entries that must all be rejected, as (kind, fields), in a seeded mix."""
    kinds = [*sorted(MALFORMED), "no_job_field"]
    for _ in range(count):
        kind = rng.choice(kinds)
        if kind == "no_job_field":
            yield kind, {rng.choice(["jobs", "payload", "JOB", "data"]): json.dumps(BASE)}
        else:
            yield kind, {"job": MALFORMED[kind](rng)}


@pytest.mark.timeout(90)
async def test_malformed_flood_is_rejected_entry_by_entry(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle, tmp_path: Path
) -> None:
    """10,000 malformed entries among 50 valid ones: each malformed one rejected, each valid one called once."""
    rng = random.Random(20261121)
    entries: list[tuple[str, dict[str, bytes | str]]] = list(malformed_entries(10_000, rng))
    valid_numbers = [f"+7911555{n:04d}" for n in range(50)]
    for number in valid_numbers:
        entries.insert(rng.randrange(len(entries) + 1), ("valid", {"job": job_json(number)}))
    url = portal.webhook_url("default")
    config = write_config(
        tmp_path / "callq.toml",
        {"default": {"webhook_url": url, "default_region": "RU", "rate": 200.0, "burst": 100}},
    )
    worker = new_worker(tmp_path, config, redis_url, prefix, "worker")
    kind_of: dict[str, str] = {}
    try:
        worker.start()
        await until_logged(worker, "worker.started")
        assert worker.process is not None
        pid = worker.process.pid
        rss_before_kb = vm_kb(pid, "VmRSS")
        for start in range(0, len(entries), 500):
            batch = entries[start : start + 500]
            async with redis.pipeline(transaction=False) as pipe:
                for _kind, fields in batch:
                    pipe.xadd(Keys(prefix).intake, fields)  # type: ignore[arg-type]
                ids = await pipe.execute()
            kind_of.update((raw.decode(), kind) for raw, (kind, _fields) in zip(ids, batch, strict=True))
        outcomes = await wait_outcomes(redis, prefix, len(entries), timeout_s=60)
        rss_after_kb, peak_kb = vm_kb(pid, "VmRSS"), vm_kb(pid, "VmHWM")
        alive = worker.process.poll() is None
    finally:
        await stop_all(worker)
    print(
        f"malformed flood: worker RSS {rss_before_kb // 1024} MB before, {rss_after_kb // 1024} MB after, "
        f"peak {peak_kb // 1024} MB; kinds {sorted(Counter(kind_of.values()).items())}"
    )
    assert alive, "the worker survived the flood"
    per_entry = Counter(o.get("intake_id") for o in outcomes)
    assert set(per_entry) == set(kind_of) and set(per_entry.values()) == {1}, "one outcome per entry"
    wrong = [
        (kind_of[o["intake_id"]], o["status"])
        for o in outcomes
        if o["status"] != ("succeeded" if kind_of[o["intake_id"]] == "valid" else "rejected")
    ]
    assert wrong == [], Counter(wrong)
    assert sorted(called_numbers(sandbox)) == valid_numbers
    assert peak_kb < 300 * 1024, f"peak RSS {peak_kb // 1024} MB"
