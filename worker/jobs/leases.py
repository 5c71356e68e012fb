"""The leases of the attempts this worker process has in flight, kept alive while it works on them.

An attempt is marked ``running`` (and takes a lease in ``{p}:running``) before its request is sent.
While this process works on it, a heartbeat extends the lease every few seconds; the lease lapses
only if the process died, or lost Redis for longer than the lease. Whoever then finds the attempt
(the reconciler, or a worker that arq handed the job again) may end it, see :mod:`worker.jobs.orphans`.

A lease is only worth something if its owner stops while it is lapsed: a process frozen (SIGSTOP, a
paused container, a stalled VM) or cut off from Redis right after START must not send its request
once someone else may have judged the attempt. So this process keeps, for each of its attempts, the
moment its lease is sure to still live by its own clock (the lease counted from *before* the write
that set it), and sends only while :meth:`AttemptLeases.send_budget` is positive: with a margin
for the request to leave, and the connection set up within what is left.

The heartbeat doubles as this process's health check of Redis: the time since its writes last
went through promptly decides whether this process may judge another's attempt orphaned
(:meth:`AttemptLeases.may_judge`). After Redis stalled or restarted, every owner gets the time to
renew its leases before anyone judges them.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import structlog
from redis.exceptions import RedisError

from schemas.store.ledger import Ledger

log = structlog.get_logger("callq.worker")

EVENT_HEARTBEAT_FAILED = "worker.heartbeat_failed"
EVENT_HEARTBEAT_SLOW = "worker.heartbeat_slow"


@dataclass(frozen=True)
class LeaseTiming:
    """How attempt leases are kept (defaults for production; tests shorten them).

    Attributes:
        lease_s: how long an attempt's lease lives without a heartbeat. A worker that died has its
            attempts ended about this long (plus ``reconcile_every_s``) later.
        heartbeat_s: how often the leases of live attempts are extended.
        grace_s: after its own Redis writes were slow or failed, this process waits this long
            before it judges anyone's attempt orphaned, so that owners alive on the other side of
            the same outage renew their leases first. Must exceed one heartbeat plus redis-py's
            reconnect backoff.
        slow_s: a heartbeat write slower than this counts as Redis unhealthy (a stall).
        reconcile_every_s: how often the reconciler looks for orphaned attempts.
    """

    lease_s: float = 20.0
    heartbeat_s: float = 4.0
    grace_s: float = 15.0
    slow_s: float = 1.0
    reconcile_every_s: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_s * 2 <= self.lease_s:
            raise ValueError("the heartbeat must come at least twice per lease")
        if self.grace_s < self.heartbeat_s:
            raise ValueError("the grace must be at least one heartbeat")

    @classmethod
    def for_lease(cls, lease_s: float) -> LeaseTiming:
        """Timings derived from one lease length (``callq worker --lease``).

        The grace stays at least 8 s whatever the lease: after an outage an owner's next write waits
        out redis-py's reconnect backoff (at most 5 s) before it renews its leases.
        """
        return cls(
            lease_s=lease_s,
            heartbeat_s=lease_s / 5,
            grace_s=max(lease_s * 0.75, 8.0),
            slow_s=min(1.0, lease_s / 5),
            reconcile_every_s=lease_s / 4,
        )

    @property
    def send_margin_s(self) -> float:
        """A request must leave at least this long before its lease could lapse (2 s at 20 s)."""
        return min(max(1.0, self.lease_s / 10), self.lease_s / 4)

    @property
    def liveness_s(self) -> float:
        """TTL of the worker's liveness key (who is alive: ``callq status``, the dashboard)."""
        return self.lease_s


def lease_clock() -> float:
    """Seconds on a clock that counts on while the process is stopped or the machine sleeps
    (``CLOCK_BOOTTIME`` where there is one): a lease lapses in Redis whatever this process was doing."""
    boottime = getattr(time, "CLOCK_BOOTTIME", None)
    return time.clock_gettime(boottime) if boottime is not None else time.monotonic()


class AttemptLeases:
    """The attempts in flight in this process, and the health of its Redis writes.

    Args:
        ledger: the job records.
        timing: lease, heartbeat and grace durations.
        clock: a monotonic clock that counts on while the process is stopped (tests pass their own).
    """

    def __init__(
        self, ledger: Ledger, *, timing: LeaseTiming, clock: Callable[[], float] = lease_clock
    ) -> None:
        self.ledger = ledger
        self.timing = timing
        self.clock = clock
        self.worker_id = secrets.token_hex(6)
        self.active: set[str] = set()
        self._sure_until: dict[str, float] = {}
        self._healthy_since: float | None = None
        self._last_ok = float("-inf")
        self._beating_since: float | None = None

    @contextlib.contextmanager
    def holding(self, job_id: str, *, taken_at: float) -> Iterator[None]:
        """Keep ``job_id``'s attempt lease alive while the block runs.

        Args:
            job_id: the job whose attempt this process started.
            taken_at: :attr:`clock` read before the START that took the lease was sent.
        """
        self.active.add(job_id)
        self._sure_until[job_id] = taken_at + self.timing.lease_s
        try:
            yield
        finally:
            self.active.discard(job_id)
            self._sure_until.pop(job_id, None)

    def send_budget(self, job_id: str) -> float:
        """Seconds left for ``job_id``'s request to leave: its lease surely lives that long plus the
        margin. Zero or less: do not send (the attempt may be judged orphaned, or already was)."""
        sure_until = self._sure_until.get(job_id, float("-inf"))
        return sure_until - self.clock() - self.timing.send_margin_s

    def may_judge(self) -> bool:
        """Whether this process's Redis writes have gone through promptly for ``grace_s``, the
        last one recently, and none is hanging now."""
        now = self.clock()
        since = self._healthy_since
        if since is None or now - since < self.timing.grace_s:
            return False
        if self._beating_since is not None and now - self._beating_since > self.timing.slow_s:
            return False
        return now - self._last_ok <= 2 * self.timing.heartbeat_s + self.timing.slow_s

    async def beat(self) -> None:
        """One heartbeat: extend the live attempts' leases, note how Redis answered."""
        began = self._beating_since = self.clock()
        try:
            _, renewed = await self.ledger.heartbeat(
                sorted(self.active),
                worker_id=self.worker_id,
                lease_s=self.timing.lease_s,
                liveness_s=self.timing.liveness_s,
            )
        except (RedisError, OSError) as exc:
            if self._healthy_since is not None:
                log.warning(EVENT_HEARTBEAT_FAILED, error=type(exc).__name__, attempts=len(self.active))
            self._healthy_since = None
            return
        finally:
            self._beating_since = None
        for job_id in renewed:
            if job_id in self._sure_until:
                self._sure_until[job_id] = max(self._sure_until[job_id], began + self.timing.lease_s)
        now = self.clock()
        if now - began > self.timing.slow_s:
            log.warning(EVENT_HEARTBEAT_SLOW, took_s=round(now - began, 3), attempts=len(self.active))
            self._healthy_since = None
            return
        self._last_ok = now
        if self._healthy_since is None:
            self._healthy_since = now

    async def keep_beating(self) -> None:
        """Beat every ``heartbeat_s`` until cancelled."""
        while True:
            await self.beat()
            await asyncio.sleep(self.timing.heartbeat_s)
