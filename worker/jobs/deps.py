"""What a job needs from the outside world, built once per worker process (no globals)."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp

from schemas.clock import Clock, utcnow
from schemas.config import Settings
from schemas.store.calls import CallStore
from schemas.store.ledger import Ledger
from schemas.store.writegate import WriteGate
from worker.bitrix.address import PortalAddresses
from worker.bitrix.client import DEFAULT_TIMEOUT
from worker.bitrix.oauth import PortalAuth
from worker.jobs.leases import AttemptLeases
from worker.jobs.ratelimit import RateLimiter
from worker.policy.classify import HaltTimes
from worker.service.metrics import Metrics


@dataclass(frozen=True)
class Deps:
    """Collaborators of the job runner.

    Attributes:
        settings: configuration.
        ledger: job records.
        session: the one aiohttp session of this process.
        limiter: the shared rate-limit buckets.
        auth: each portal's credentials (webhook, or OAuth tokens refreshed once for all workers).
        addresses: where each portal answers (its configured address, or the one it moved to).
        leases: the attempts in flight in this process, whose leases its heartbeat keeps alive.
        metrics: where counters go.
        clock: current time.
        jitter: draws a number in [0, 1) for backoff jitter.
        client_timeout: HTTP timeouts for Bitrix24 requests.
        rate_limit: take rate-limit slots (off only in benchmarks measuring their cost).
        retry_base_s: backoff ceiling after the first failure (tests pass a small one).
        pause_s: how long a portal halts after Bitrix24 refused its credentials (then a job probes again).
        refused_s: how long a portal halts after Bitrix24 refused it a scope, permission, plan or method.
        block_s: how long a portal halts after ``OVERLOAD_LIMIT`` (a manual block only support lifts).
        gate: whether Redis takes writes (Redis full); the ledger and limiter wait on it.
        calls: the call follow-up's store (None: calls are not followed in this process).
        attempt_token: while an attempt runs, its lease token: what its worker writes at its end
            lands only while the record still holds it (empty outside an attempt).
    """

    settings: Settings
    ledger: Ledger
    session: aiohttp.ClientSession
    limiter: RateLimiter
    auth: PortalAuth
    addresses: PortalAddresses
    leases: AttemptLeases
    metrics: Metrics = field(default_factory=Metrics)
    clock: Clock = utcnow
    jitter: Callable[[], float] = random.random
    client_timeout: aiohttp.ClientTimeout = field(default=DEFAULT_TIMEOUT)
    rate_limit: bool = True
    retry_base_s: float = 5.0
    pause_s: float = 60.0
    refused_s: float = 300.0
    block_s: float = 3600.0
    gate: WriteGate = field(default_factory=WriteGate)
    attempt_token: str = ""
    calls: CallStore | None = None

    @property
    def halts(self) -> HaltTimes:
        """How long each kind of refusal halts a portal."""
        return HaltTimes(credentials_s=self.pause_s, refused_s=self.refused_s, blocked_s=self.block_s)
