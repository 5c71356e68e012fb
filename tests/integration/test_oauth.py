"""OAuth portals end to end: four worker processes, an access token that expires mid-run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxPortal, running_sandbox
from schemas.store.keys import Keys
from tests.support.helpers import wait_outcomes
from tests.support.processes import new_worker, write_config

TEXT = "Callback request"


@pytest.mark.timeout(90)
async def test_expired_token_is_refreshed_once_by_four_racing_workers(
    redis_url: str, prefix: str, redis: Redis, tmp_path: Path
) -> None:
    """Tokens expire mid-run: one refresh for four workers, every job succeeds, each number called once."""
    sandbox = Sandbox(
        [
            SandboxPortal(
                name="default",
                webhooks={(1, "unused")},
                oauth_clients={"app": "app-secret"},
                rate=20.0,
                burst=5,
            )
        ]
    )
    async with running_sandbox(sandbox) as handle:
        refresh_token = sandbox.issue_refresh_token("default", "app")
        oauth = {
            "client_id": "app",
            "client_secret": "app-secret",
            "refresh_token": refresh_token,
            "domain": "127.0.0.1",
            "token_url": f"{handle.base_url}/oauth/token/",
        }
        config = write_config(
            tmp_path / "callq.toml",
            {"default": {"oauth": oauth, "default_region": "RU", "rate": 20.0, "burst": 5}},
        )
        workers = [new_worker(tmp_path, config, redis_url, prefix, f"w{i}") for i in range(4)]
        try:
            for w in workers:
                w.start()
            for n in range(40):
                job = {"from_line": "reg1332", "to_number": f"+7911000{n:04d}", "text_to_pronounce": TEXT}
                await redis.xadd(Keys(prefix).intake, {"job": json.dumps(job)})
            await wait_outcomes(redis, prefix, 10, timeout_s=30)
            assert sandbox.expire_access_tokens("default") >= 1
            outcomes = await wait_outcomes(redis, prefix, 40, timeout_s=40)
        finally:
            for w in workers:
                w.stop()
    assert sorted(o["status"] for o in outcomes) == ["succeeded"] * 40
    grants = sandbox.token_requests("default")
    assert [r.status for r in grants] == [200, 200], "one token at start, one refresh after the expiry"
    expired = [c for c in sandbox.calls(portal="default") if c.status == 401]
    assert expired, "some requests met the expired token"
    executed = [c.params["TO_NUMBER"] for c in sandbox.calls(portal="default", executed_only=True)]
    assert len(executed) == len(set(executed)) == 40
    logs = "".join(w.log_text() for w in workers)
    assert refresh_token not in logs and "app-secret" not in logs
