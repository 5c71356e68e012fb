"""`callq check` compares its configuration with the live processes' (issue 11)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from ops.sandbox import SandboxHandle
from schemas.config.registry import ConfigRegistry
from schemas.store.keys import Keys
from tests.support.helpers import make_settings, running_worker, sandbox_portal, wait_for
from tests.support.processes import callq_env, run_callq, write_config


async def test_callq_check_compares_with_the_live_processes(
    redis_url: str, prefix: str, redis: Redis, portal: SandboxHandle, tmp_path: Path
) -> None:
    """`callq check` has a row that fails naming the differing key while a worker runs another rate,
    and passes with no live process."""
    url = portal.webhook_url("default")
    portal_toml = {"webhook_url": url, "default_region": "RU", "rate": 5.0}
    config = write_config(tmp_path / "callq.toml", {"default": portal_toml})
    env = callq_env(CALLQ_CONFIG=str(config), CALLQ_REDIS_URL=redis_url, CALLQ_KEY_PREFIX=prefix)

    async def drift_row() -> tuple[int, dict[str, Any]]:
        code, out, _err = await run_callq(["check", "--json"], env)
        rows = json.loads(out)
        (row,) = [r for r in rows if r["check"] == "same as the live processes"]
        return code, row

    registry = ConfigRegistry(redis, Keys(prefix))
    async with running_worker(make_settings(redis_url, prefix, {"default": sandbox_portal(url)})):
        await wait_for(registry.live, what="the worker in the registry")
        code, row = await drift_row()
    assert code == 1 and not row["ok"]
    assert row["detail"].startswith("portals.default.rate differ from worker ")
    code, row = await drift_row()
    assert (row["ok"], row["detail"]) == (True, "no live worker or serve to compare with")
