"""Redis refusing writes: a worker that rides it out instead of crashing.

Redis full is the common case, and the one described here; a Redis that refuses writes for another
reason (``MISCONF``: its RDB save fails; ``READONLY``: a replica after a failover; ``NOREPLICAS``:
``min-replicas-to-write``) is ridden out the same way (:func:`schemas.store.errors.write_refusal`
tells them all). Those refuse deletes too, which only means what would have been deleted waits.

With ``maxmemory-policy noeviction`` (what ``ops/deploy/redis/redis.conf`` sets: an evicted key
would be a lost callback) a full Redis refuses every command that may add data with ``OOM command
not allowed when used memory > 'maxmemory'`` (redis-py ``OutOfMemoryError``), and keeps serving
reads, deletes, expiries and acknowledgements. A refused command did nothing: a callq Lua script is
refused at its first write, before it changed anything, and a MULTI is refused whole. So the same
command can always be sent again later, and nothing that was refused needs undoing.

:class:`WriteGate` is one worker process's view of it. The first refusal logs ``redis.full`` once
(not a traceback per poll; ``redis.writes_refused`` with its ``reason`` for the other refusals) and
sets ``callq_redis_full`` (``callq_redis_writes_refused{reason}`` for any); from then on each writer tries again when
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
from redis.exceptions import ResponseError

from schemas.store.errors import REFUSALS, Refusal, write_refusal

log = structlog.get_logger("callq.worker")

T = TypeVar("T")

EVENT_FULL = "redis.full"
EVENT_REFUSED = "redis.writes_refused"
"""Redis refuses writes for a reason other than memory (the event names the ``reason``)."""
EVENT_WRITABLE = "redis.writable"
EVENT_WRITE_HELD = "redis.write_held"

HINT = (
    "Redis reached maxmemory (noeviction) and refuses writes: free memory or raise maxmemory; "
    "callq waits, keeps what it could not write, and resumes by itself"
)


def _unchanged(_refusal: Refusal | None) -> None:
    return None


def refusal_or_raise(exc: ResponseError) -> Refusal:
    """Why ``exc`` says Redis refuses writes; ``exc`` itself, raised again, when it says anything else.

    For ``except ResponseError as exc: reason = refusal_or_raise(exc)``: Python's ``except`` matches
    classes only, and two of the four refusals are a plain ``ResponseError``.
    """
    refusal = write_refusal(exc)
    if refusal is None:
        raise exc
    return refusal


class WriteGate:
    """Whether Redis takes writes, as this process last saw, and when to try again.

    Args:
        on_change: called with the reason when Redis starts refusing writes (or refuses them for
            another reason), None when it takes them again (the worker sets its gauges).
        first_wait_s: the wait before the first try after a refusal; doubles on each refused try.
        max_wait_s: the longest wait between tries.
        clock: monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        *,
        on_change: Callable[[Refusal | None], None] = _unchanged,
        first_wait_s: float = 0.5,
        max_wait_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.on_change = on_change
        self.first_wait_s = first_wait_s
        self.max_wait_s = max_wait_s
        self.clock = clock
        self.refusal: Refusal | None = None
        self._since = 0.0
        self._wait_s = first_wait_s
        self._next_try = 0.0

    @property
    def refusing(self) -> bool:
        """Redis refused this process's last write that could tell (for any reason)."""
        return self.refusal is not None

    @property
    def full(self) -> bool:
        """Redis refuses writes because it is full."""
        return self.refusal is Refusal.FULL

    def refused(self, where: str, refusal: Refusal = Refusal.FULL) -> None:
        """A write was refused (``where``: what was written, for the log; ``refusal``: why).

        Several writers refused in one round count once, so the wait doubles once per round.
        """
        now = self.clock()
        if self.refusal is not refusal:
            if self.refusal is None:
                self._since, self._wait_s = now, self.first_wait_s
            self.refusal = refusal
            if refusal is Refusal.FULL:
                log.error(EVENT_FULL, where=where, reason=str(refusal), hint=HINT)
            else:
                log.error(EVENT_REFUSED, where=where, reason=str(refusal), hint=REFUSALS[refusal])
            self.on_change(refusal)
        elif now >= self._next_try:
            self._wait_s = min(self._wait_s * 2, self.max_wait_s)
        else:
            return
        self._next_try = now + self._wait_s

    def accepted(self) -> None:
        """A write that always writes went through (the heartbeat, a claim that took jobs): Redis
        takes writes again. Not any write: a script that found nothing to change writes nothing, so
        it says nothing about memory."""
        if self.refusal is not None:
            refusal, self.refusal = self.refusal, None
            log.warning(
                EVENT_WRITABLE, reason=str(refusal), refused_for_s=round(self.clock() - self._since, 1)
            )
            self.on_change(None)

    def due(self) -> bool:
        """True unless Redis refuses writes and the next try is not due yet."""
        return self.refusal is None or self.clock() >= self._next_try

    def wait_s(self) -> float:
        """Seconds until the next try is due (0 when Redis is not known to refuse writes)."""
        return max(self._next_try - self.clock(), 0.0) if self.refusal is not None else 0.0

    async def until_written(self, write: Callable[[], Awaitable[T]], *, where: str) -> T:
        """Send ``write`` until Redis takes it, waiting between tries while it is full.

        For writes that must not be lost: the result of a request already sent. Any refusal of
        :func:`~schemas.store.errors.write_refusal` waits; any other error is raised. A write that has to
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
            except ResponseError as exc:
                self.refused(where, refusal_or_raise(exc))
            if not held:
                held = True
                log.info(EVENT_WRITE_HELD, where=where)
            await asyncio.sleep(self.wait_s())
