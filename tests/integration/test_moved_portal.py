"""A portal that moved: followed to its new address by every job, never to another path or to http."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxHandle, SandboxPortal, running_sandbox
from producers.api import Producer
from schemas.store.keys import Keys
from schemas.store.portal_moves import read_move
from tests.support.helpers import FAST, make_settings, running_worker, sandbox_portal, wait_outcomes
from tests.support.processes import run_callq, write_config
from worker.service.metrics import Metrics, refresh_gauges

TEXT = "Callback request"
HOUR_LATER = datetime.now(UTC) + timedelta(hours=1)
PATH = "/rest/1/sandboxsecret/voximplant.callback.start.json"


def portal_sandbox() -> Sandbox:
    """One portal with a high rate limit."""
    return Sandbox([SandboxPortal(name="default", webhooks={(1, "sandboxsecret")}, rate=1000.0, burst=1000)])


async def enqueue(redis: Redis, settings: object, count: int) -> None:
    """``count`` jobs to distinct numbers."""
    producer = Producer(redis, settings=settings)  # type: ignore[arg-type]
    for n in range(count):
        await producer.enqueue(from_line="reg1332", to_number=f"+7911123{n:04d}", text_to_pronounce=TEXT)


async def test_every_job_succeeds_at_the_new_address(
    redis_url: str, prefix: str, redis: Redis, tmp_path: Path
) -> None:
    """A 302 to another host, same path: every job succeeds there, the move is kept for every worker and
    shown (metric, `callq check`), and the secret went only to the configured host and the new one."""
    sandbox = portal_sandbox()
    async with running_sandbox(sandbox) as handle:
        port = handle.base_url.rsplit(":", 1)[1]
        old, new = f"http://127.0.0.1:{port}", f"http://localhost:{port}"
        sandbox.set_switches("default", {"moved_to": new})
        portal = sandbox_portal(handle.webhook_url("default"))
        settings = make_settings(redis_url, prefix, {"default": portal})
        await enqueue(redis, settings, 30)
        later = await Producer(redis, settings=settings).enqueue(
            from_line="reg1332", to_number="+79111239999", text_to_pronounce=TEXT, not_before=HOUR_LATER
        )
        async with running_worker(settings) as worker:
            outcomes = await wait_outcomes(redis, prefix, 30, timeout_s=30)
            moves = worker.callbacks.metrics.registry.get_sample_value(
                "callq_portal_moves_total", {"portal": "default"}
            )
        metrics = Metrics()
        await refresh_gauges(metrics, redis, Keys(prefix), settings.portals)
        code, rows = await check_rows(handle, tmp_path, redis_url, prefix)
        status = await run_callq(["status", later.job_id], cli_env(handle, tmp_path, redis_url, prefix))

    assert {o["status"] for o in outcomes} == {"succeeded"}
    calls = sandbox.calls()
    assert {(c.host, c.path) for c in calls} == {(f"127.0.0.1:{port}", PATH), (f"localhost:{port}", PATH)}
    checks = [c for c in sandbox.calls(method=None) if c.method != "voximplant.callback.start"]
    assert checks and {c.host for c in checks} == {f"localhost:{port}"}, (
        "`callq check` followed the kept move"
    )
    at_old = [c for c in calls if c.host == f"127.0.0.1:{port}"]
    assert all(c.status == 302 and not c.executed for c in at_old), "the old host ran nothing"
    assert 1 <= len(at_old) <= FAST.concurrency, "only requests sent before the move was known went there"
    assert len(sandbox.calls(executed_only=True)) == 30 and all(
        c.host == f"localhost:{port}" for c in sandbox.calls(executed_only=True)
    )
    move = await read_move(redis, Keys(prefix), "default")
    assert move is not None and (move.moved_from, move.moved_to) == (old, new)
    assert moves == 1 and metrics.registry.get_sample_value("callq_portal_moved", {"portal": "default"}) == 1
    assert code == 1
    (address,) = [row for row in rows if row["check"] == "address"]
    detail = str(address["detail"])
    assert not address["ok"] and new in detail and "update webhook_url" in detail
    assert all(row["ok"] for row in rows if row["check"] != "address")
    assert f"PORTAL MOVED: from {old} to {new}" in status[1], "a waiting job's status says where calls go"


@pytest.mark.parametrize(
    ("moved_to", "reason"),
    [
        ("http://moved.example.invalid", "http is not https"),
        ("http://localhost:{port}/elsewhere", "another path"),
    ],
)
async def test_a_redirect_to_http_or_another_path_is_not_followed(
    redis_url: str, prefix: str, redis: Redis, moved_to: str, reason: str
) -> None:
    """A 302 to plain http (not loopback) or to another path is not followed: the job ends OUTCOME_UNKNOWN,
    one request was sent (to the configured host), no move is kept, and no secret is in the outcome."""
    sandbox = portal_sandbox()
    async with running_sandbox(sandbox) as handle:
        port = handle.base_url.rsplit(":", 1)[1]
        sandbox.set_switches("default", {"moved_to": moved_to.format(port=port)})
        settings = make_settings(
            redis_url, prefix, {"default": sandbox_portal(handle.webhook_url("default"))}
        )
        await enqueue(redis, settings, 1)
        async with running_worker(settings):
            (outcome,) = await wait_outcomes(redis, prefix, 1)
    assert (outcome["status"], outcome["error"]["code"]) == ("dead", "OUTCOME_UNKNOWN")
    assert f"not followed ({reason})" in outcome["error"]["description"]
    assert "sandboxsecret" not in json.dumps(outcome)
    assert [(c.host, c.path, c.status) for c in sandbox.calls(method=None)] == [
        (f"127.0.0.1:{port}", PATH, 302)
    ]
    assert await read_move(redis, Keys(prefix), "default") is None


def cli_env(handle: SandboxHandle, tmp_path: Path, redis_url: str, prefix: str) -> dict[str, str]:
    """The environment of a `callq` process configured with the sandbox's portal at its old address."""
    portals = {"default": {"webhook_url": handle.webhook_url("default")}}
    config = write_config(tmp_path / "callq.toml", portals)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQ_")}
    env.update(CALLQ_CONFIG=str(config), CALLQ_REDIS_URL=redis_url, CALLQ_KEY_PREFIX=prefix)
    return env


async def check_rows(
    handle: SandboxHandle, tmp_path: Path, redis_url: str, prefix: str
) -> tuple[int, list[dict[str, object]]]:
    """``callq check --json`` for the sandbox's portal at its configured (old) address."""
    code, out, err = await run_callq(["check", "--json"], cli_env(handle, tmp_path, redis_url, prefix))
    assert out, err
    return code, json.loads(out)
