"""Where a portal answers: its configured address, or the one it moved to, shared by every worker.

A portal that moved to another domain answers a redirect (:class:`~worker.bitrix.errors.PortalMoved`,
accepted by :mod:`worker.policy.redirect`: ``https``, another host, the very same path). Bitrix24 ran
nothing, so the same request is sent once more to the new address at once, and the move is
remembered in Redis (:mod:`schemas.store.portal_moves`), so that every worker sends there from then
on, until ops update the configuration (``callq check`` and ``callq status`` say so).

Use: ``await addresses.send(portal, creds, send)`` around one request; :func:`worker.bitrix.oauth.
send_with_refresh` goes around that.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas.config import PortalConfig
from schemas.policy.moves import PortalMove, origin_of
from schemas.store.keys import Keys
from schemas.store.ledger import WriteRetry, send_once
from schemas.store.portal_moves import read_move
from worker.bitrix.errors import PortalMoved
from worker.bitrix.oauth_tokens import Credentials

log = structlog.get_logger("callq.worker")

T = TypeVar("T")

MOVE_FRESH_S = 5.0
"""How long a process keeps using the move it read for a portal (or that there was none)."""


class PortalAddresses:
    """The portals' addresses for one worker process; the moves are kept in Redis.

    Args:
        redis: the deployment's Redis; None follows a move within this process only (``callq check``
            when Redis does not answer).
        keys: its key names.
        retry: what to do when Redis refuses to store a move for being full (the worker: keep trying).
        on_move: called with the portal's name and the move when a move is newly seen (a metric).
        fresh_s: how long a move read from Redis is used before it is read again.
        clock: a monotonic clock (tests pass their own).
    """

    def __init__(
        self,
        redis: Redis | None,
        keys: Keys,
        *,
        retry: WriteRetry = send_once,
        on_move: Callable[[str, PortalMove], None] = lambda _portal, _move: None,
        fresh_s: float = MOVE_FRESH_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.redis, self.keys, self.retry, self.on_move = redis, keys, retry, on_move
        self.fresh_s, self.clock = fresh_s, clock
        self._read: dict[str, tuple[float, PortalMove | None]] = {}

    async def send(
        self, portal: PortalConfig, creds: Credentials, send: Callable[[Credentials], Awaitable[T]]
    ) -> T:
        """Send to where ``portal`` answers now; if it redirects to a new address, remember that and
        send once more there.

        Raises:
            PortalMoved: the new address redirected too (nothing was run; retried later).
            BitrixCallError: whatever ``send`` raises otherwise.
        """
        try:
            return await send(self._at(creds, await self._current(portal.name)))
        except PortalMoved as moved:
            configured = origin_of(creds.base_url)
            try:
                await self.record(portal.name, moved_from=configured, moved_to=moved.origin)
            except RedisError as exc:  # followed all the same; the next request learns it again
                log.warning("portal.move_unrecorded", portal=portal.name, error=type(exc).__name__)
            target = PortalMove(configured, moved.origin, "")
            return await send(self._at(creds, target))

    async def _current(self, portal: str) -> PortalMove | None:
        """The move recorded for ``portal``; None if none, or if Redis does not answer (nothing has
        been sent yet: a portal that moved redirects again, and is followed)."""
        if self.redis is None:
            return None
        now = self.clock()
        read_at, move = self._read.get(portal, (float("-inf"), None))
        if now - read_at < self.fresh_s:
            return move
        try:
            move = await read_move(self.redis, self.keys, portal)
        except RedisError as exc:
            log.warning("portal.move_unread", portal=portal, error=type(exc).__name__)
            return None
        self._read[portal] = (now, move)
        return move

    async def record(self, portal: str, *, moved_from: str, moved_to: str) -> PortalMove:
        """Remember that ``portal`` moved; log it (and count it) the first time it is seen."""
        move = PortalMove(moved_from, moved_to, datetime.now(UTC).isoformat(timespec="seconds"))
        key, value, redis = self.keys.portal_moved(portal), move.to_json(), self.redis
        before = None
        if redis is not None:
            previous = await self.retry(lambda: redis.set(key, value, get=True), where="portal move")
            before = PortalMove.from_json(previous)
        self._read[portal] = (self.clock(), move)
        if before is None or (before.moved_from, before.moved_to) != (moved_from, moved_to):
            self.on_move(portal, move)
            log.warning(
                "portal.moved",
                portal=portal,
                moved_from=moved_from,
                moved_to=moved_to,
                hint=f"every worker now sends to {moved_to}; update portal {portal!r}'s address in the "
                "configuration (`callq check` says which)",
            )
        return move

    @staticmethod
    def _at(creds: Credentials, move: PortalMove | None) -> Credentials:
        if move is None:
            return creds
        return dataclasses.replace(creds, base_url=move.rebase(creds.base_url))
