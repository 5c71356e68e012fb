"""Redis full: a worker that rides out ``maxmemory`` under ``noeviction`` instead of crashing.

With ``maxmemory-policy noeviction`` (what ``ops/deploy/redis/redis.conf`` sets: an evicted key
would be a lost callback) a full Redis refuses every command that may add data with ``OOM command
not allowed when used memory > 'maxmemory'`` (redis-py ``OutOfMemoryError``), and keeps serving
reads, deletes, expiries and acknowledgements. A refused command did nothing: a callq Lua script is
refused at its first write, before it changed anything, and a MULTI is refused whole. So the same
command can always be sent again later, and nothing that was refused needs undoing.

:class:`WriteGate` is one worker process's view of it. The first refusal logs ``redis.full`` once
(not a traceback per poll) and sets ``callq_redis_full``; from then on each writer tries again when
:meth:`WriteGate.due` says so (0.5 s doubling to 5 s, shared by every writer of the process), and the
first heartbeat or claim Redis takes again logs ``redis.writable`` and clears the gauge. The arq side
(:mod:`schemas.jobqueue.worker`) claims no job and tries its heartbeat only when a try is due while full; a
job that holds the result of a request it sent keeps that result in memory and writes it once Redis
takes writes again (:meth:`WriteGate.until_written`), so it still ends with its real outcome.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from redis.exceptions import OutOfMemoryError

log = structlog.get_logger("callq.worker")

T = TypeVar("T")

EVENT_FULL = "redis.full"
EVENT_WRITABLE = "redis.writable"
EVENT_WRITE_HELD = "redis.write_held"

HINT = (
    "Redis reached maxmemory (noeviction) and refuses writes: free memory or raise maxmemory; "
    "callq waits, keeps what it could not write, and resumes by itself"
)


def _unchanged(_full: bool) -> None:
    return None


class WriteGate:
    """Whether Redis takes writes, as this process last saw, and when to try again.

    Args:
        on_change: called with True when Redis starts refusing writes, False when it takes them
            again (the worker sets ``callq_redis_full``).
        first_wait_s: the wait before the first try after a refusal; doubles on each refused try.
        max_wait_s: the longest wait between tries.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        *,
        on_change: Callable[[bool], None] = _unchanged,
        first_wait_s: float = 0.5,
        max_wait_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_change = on_change
        self.first_wait_s = first_wait_s
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.full = False
        self._since = 0.0
        self._wait_s = first_wait_s
        self._next_try = 0.0

    def refused(self, where: str) -> None:
        """A write was refused because Redis is full (``where``: what was written, for the log).

        Several writers refused in one round count once, so the wait doubles once per round.
        """
        now = self.clock()
        if not self.full:
            self.full, self._since, self._wait_s = True, now, self.first_wait_s
            log.error(EVENT_FULL, where=where, hint=HINT)
            self.on_change(True)
        elif now >= self._next_try:
            self._wait_s = min(self._wait_s * 2, self.max_wait_s)
        else:
            return
        self._next_try = now + self._wait_s

    def accepted(self) -> None:
        """A write that always writes went through (the heartbeat, a claim that took jobs): Redis
        takes writes again. Not any write: a script that found nothing to change writes nothing, so
        it says nothing about memory."""
        if self.full:
            self.full = False
            log.warning(EVENT_WRITABLE, full_for_s=round(self.clock() - self._since, 1))
            self.on_change(False)

    def due(self) -> bool:
        """True unless Redis is full and the next try is not due yet."""
        return not self.full or self.clock() >= self._next_try

    def wait_s(self) -> float:
        """Seconds until the next try is due (0 when Redis is not known to be full)."""
        return max(self._next_try - self.clock(), 0.0) if self.full else 0.0

    async def until_written(self, write: Callable[[], Awaitable[T]], *, where: str) -> T:
        """Send ``write`` until Redis takes it, waiting between tries while it is full.

        For writes that must not be lost: the result of a request already sent. A write that has to
        wait logs ``redis.write_held`` once (the job's fields are bound to the log context). Cancelled
        while it waits, it gives up (the job function says what that means for the job).

        Args:
            write: makes and sends the command (called again for each try).
            where: what is written, for the log.

        Returns:
            What ``write`` returned.
        """
        held = False
        while True:
            try:
                return await write()
            except OutOfMemoryError:
                self.refused(where)
            if not held:
                held = True
                log.info(EVENT_WRITE_HELD, where=where)
            await asyncio.sleep(self.wait_s())
