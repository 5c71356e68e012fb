"""The lease heartbeat and its health gate (:mod:`worker.jobs.leases`): a process judges others' attempts
only after its own Redis writes have gone through promptly for the grace period."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis

from ops.redis_server import free_port
from schemas.store.keys import Keys
from schemas.store.ledger import Ledger
from tests.support.helpers import FakeClock
from worker.jobs.leases import AttemptLeases, LeaseTiming

TIMING = LeaseTiming(lease_s=10, heartbeat_s=2, grace_s=6, slow_s=1, reconcile_every_s=2)


def leases_on(redis: Redis, prefix: str, clock: FakeClock) -> AttemptLeases:
    ledger = Ledger(redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=10)
    return AttemptLeases(ledger, timing=TIMING, clock=clock)


async def test_a_process_judges_only_after_the_grace(redis: Redis, prefix: str) -> None:
    """Healthy heartbeats for the whole grace period open the gate; a recent one keeps it open."""
    clock = FakeClock()
    leases = leases_on(redis, prefix, clock)
    assert not leases.may_judge(), "no heartbeat yet"
    await leases.beat()
    clock.now += 4
    await leases.beat()
    assert not leases.may_judge(), "4 s of 6"
    clock.now += 2
    await leases.beat()
    assert leases.may_judge()
    clock.now += 2 * TIMING.heartbeat_s + TIMING.slow_s + 0.1
    assert not leases.may_judge(), "no heartbeat went through lately"


async def test_a_failed_heartbeat_closes_the_gate_for_a_grace(redis: Redis, prefix: str) -> None:
    """After a write to Redis failed, the grace starts again from the next good heartbeat."""
    clock = FakeClock()
    good = leases_on(redis, prefix, clock)
    await good.beat()
    clock.now += 7
    await good.beat()
    assert good.may_judge()
    dead_redis = Redis(port=free_port(), socket_connect_timeout=0.5)
    try:
        good.ledger = Ledger(dead_redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=10)
        await good.beat()
    finally:
        await dead_redis.aclose()
    assert not good.may_judge()
    good.ledger = Ledger(redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=10)
    await good.beat()
    clock.now += 5
    await good.beat()
    assert not good.may_judge(), "5 s of 6 since Redis came back"
    clock.now += 1
    await good.beat()
    assert good.may_judge()


def test_timings_keep_their_order() -> None:
    """A heartbeat less than twice per lease, or a grace shorter than a heartbeat, is refused."""
    with pytest.raises(ValueError, match="twice per lease"):
        LeaseTiming(lease_s=4, heartbeat_s=3)
    with pytest.raises(ValueError, match="grace"):
        LeaseTiming(lease_s=20, heartbeat_s=4, grace_s=1)
    short = LeaseTiming.for_lease(3)
    assert (short.heartbeat_s, short.grace_s, short.reconcile_every_s) == (0.6, 8.0, 0.75)
