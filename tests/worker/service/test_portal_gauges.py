"""The portal gauges say why a portal waits: its rate limit, its execution-time budget, a halt, a move."""

from __future__ import annotations

import json
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from schemas.config import PortalConfig
from schemas.policy.moves import PortalMove
from schemas.store.keys import Keys
from worker.service.metrics import Metrics, refresh_gauges

PORTAL = PortalConfig(name="acme", webhook_url="https://acme.bitrix24.ru/rest/1/c/", timezone=ZoneInfo("UTC"))


@pytest.mark.parametrize(
    ("pause", "halted", "moved_from", "expected"),
    [
        (None, False, None, {"rate_limit": 0, "operating": 0, "halted": 0, "moved": 0}),
        ("1", False, None, {"rate_limit": 1, "operating": 0, "halted": 0, "moved": 0}),
        ("operating", True, None, {"rate_limit": 0, "operating": 1, "halted": 1, "moved": 0}),
        (None, False, "https://acme.bitrix24.ru", {"rate_limit": 0, "operating": 0, "halted": 0, "moved": 1}),
        (None, False, "https://old.bitrix24.ru", {"rate_limit": 0, "operating": 0, "halted": 0, "moved": 0}),
    ],
)
async def test_gauges(
    redis: Redis,
    prefix: str,
    pause: str | None,
    halted: bool,
    moved_from: str | None,
    expected: dict[str, int],
) -> None:
    """A pause is `rate_limit` or `operating` by its value; a move counts while the configuration names
    the address it moved from."""
    keys = Keys(prefix)
    if pause is not None:
        await redis.set(keys.portal_pause("acme"), pause, px=60_000)
    if halted:
        await redis.set(keys.portal_halt("acme"), json.dumps({"code": "x"}), px=60_000)
    if moved_from is not None:
        await redis.set(
            keys.portal_moved("acme"), PortalMove(moved_from, "https://new.example", "t").to_json()
        )
    metrics = Metrics()
    await refresh_gauges(metrics, redis, keys, {"acme": PORTAL})
    sample = metrics.registry.get_sample_value
    got = {
        reason: sample("callq_portal_paused", {"portal": "acme", "reason": reason})
        for reason in ("rate_limit", "operating", "halted")
    }
    got["moved"] = sample("callq_portal_moved", {"portal": "acme"})
    assert got == expected
