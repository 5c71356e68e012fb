"""Where a portal that moved now answers, in Redis, shared by every worker and shown by the commands.

The value is :class:`schemas.policy.moves.PortalMove` (origins only: no webhook code). Workers (and
``callq check``) record a move when a portal redirects them (:mod:`worker.bitrix.address`);
``callq status``, ``callq check`` and the metrics read it here.
"""

from __future__ import annotations

from redis.asyncio import Redis

from schemas.policy.moves import PortalMove
from schemas.store.keys import Keys


async def read_move(redis: Redis, keys: Keys, portal: str) -> PortalMove | None:
    """The move recorded for ``portal``, or None."""
    return PortalMove.from_json(await redis.get(keys.portal_moved(portal)))
