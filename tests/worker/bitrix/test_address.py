"""A portal's move is read from Redis once per ``fresh_s`` per process, not once per request."""

from __future__ import annotations

from redis.asyncio import Redis

from schemas.policy.moves import PortalMove
from schemas.store.keys import Keys
from tests.support.helpers import make_settings, sandbox_portal
from worker.bitrix.address import PortalAddresses
from worker.bitrix.oauth_tokens import Credentials

OLD, NEW = "https://old.bitrix24.ru", "https://new.bitrix24.ru"


async def test_a_move_another_worker_recorded_is_followed_once_the_read_is_stale(
    redis: Redis, redis_url: str, prefix: str
) -> None:
    """Requests within ``fresh_s`` of the last read go where it said (no Redis read each); the next
    one after that reads the move another worker recorded, and goes to the new address."""
    keys, now = Keys(prefix), [0.0]
    portal = make_settings(redis_url, prefix, {"default": sandbox_portal(f"{OLD}/rest/1/x/")}).portals[
        "default"
    ]
    addresses = PortalAddresses(redis, keys, fresh_s=5.0, clock=lambda: now[0])
    sent_to: list[str] = []

    async def send(creds: Credentials) -> None:
        sent_to.append(creds.base_url)

    creds = Credentials(base_url=f"{OLD}/rest/1/x/")
    await addresses.send(portal, creds, send)
    await redis.set(keys.portal_moved(portal.name), PortalMove(OLD, NEW, "").to_json())
    now[0] = 4.9
    await addresses.send(portal, creds, send)
    now[0] = 5.0
    await addresses.send(portal, creds, send)
    assert sent_to == [f"{OLD}/rest/1/x/", f"{OLD}/rest/1/x/", f"{NEW}/rest/1/x/"]
