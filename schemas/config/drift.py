"""Configuration drift, seen from one process: report its fingerprint, notice live processes that differ.

Every worker and ``callq serve`` runs a :class:`ConfigWatch`: at start and every ``REFRESH_S`` it
refreshes its entry in the registry (:mod:`schemas.config.registry`) and compares its fingerprint
with every other live process's. On a difference it logs ``config.mismatch`` at error level, naming
the other processes and the keys that differ (``portals.acme.rate``; never a value), once per new
difference, sets ``callq_config_mismatch`` to 1, and logs ``config.agreed`` once they agree again.

A mismatching process keeps running: a rolling configuration change (edit every host, restart the
workers one at a time, then serve) passes through a mismatch by design, and refusing to start would
make it impossible. ``/readyz`` of serve fails only when serve disagrees with every live worker
(:func:`serve_config_check`): then it would admit jobs by a configuration no worker runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas.config import Settings
from schemas.config.fingerprint import Fingerprint, differences, fingerprint
from schemas.config.registry import REFRESH_S, ConfigRegistry, LiveProcess
from schemas.store.keys import Keys
from schemas.store.secret import derive_key

log = structlog.get_logger("callq.config")

EVENT_MISMATCH = "config.mismatch"
EVENT_AGREED = "config.agreed"
WITHDRAW_TIMEOUT_S = 2.0
CREDENTIALS_PURPOSE = "config credentials"
"""What the deployment's secret is derived for here (:func:`schemas.store.secret.derive_key`)."""


@dataclass(frozen=True)
class Disagreement:
    """Live processes that share one fingerprint other than ours, and what differs from ours.

    Attributes:
        digest: their fingerprint.
        processes: each named ``role host:pid``.
        keys: the dotted keys that differ; ``unknown`` if their parts could not be read.
    """

    digest: str
    processes: tuple[str, ...]
    keys: tuple[str, ...]


async def disagreements(
    registry: ConfigRegistry, mine: Fingerprint, live: Sequence[LiveProcess]
) -> list[Disagreement]:
    """The live processes whose fingerprint is not ``mine``, by fingerprint, with what differs."""
    groups: dict[str, list[LiveProcess]] = {}
    for process in live:
        if process.digest != mine.digest:
            groups.setdefault(process.digest, []).append(process)
    found = []
    for digest, processes in sorted(groups.items()):
        parts = await registry.parts(digest)
        keys = tuple(differences(mine.parts, parts)) if parts is not None else ("unknown",)
        found.append(Disagreement(digest, tuple(sorted(p.describe() for p in processes)), keys))
    return found


def credential_key(secret: bytes) -> bytes:
    """The key of the credential digests, from the deployment's secret."""
    return derive_key(secret, CREDENTIALS_PURPOSE)


class ConfigWatch:
    """This process's side of drift detection.

    Args:
        redis: the client (owned by the caller).
        keys: key names under the prefix.
        settings: this process's configuration.
        secret: the deployment's secret (:func:`schemas.store.secret.deployment_secret`).
        role: ``worker`` or ``serve``.
        on_mismatch: told True or False after every comparison (the metrics gauge).
        refresh_s: how often to refresh and compare.
    """

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        settings: Settings,
        *,
        secret: bytes,
        role: str,
        on_mismatch: Callable[[bool], None] = lambda _: None,
        refresh_s: float = REFRESH_S,
    ) -> None:
        self.registry = ConfigRegistry(redis, keys)
        self.fingerprint = fingerprint(settings, credential_key=credential_key(secret))
        nonce = secrets.token_hex(3)
        self.me = LiveProcess(role, socket.gethostname(), os.getpid(), nonce, self.fingerprint.digest)
        self.on_mismatch = on_mismatch
        self.refresh_s = refresh_s
        self.found: list[Disagreement] = []

    async def check(self) -> list[Disagreement]:
        """Refresh this process's entry, compare, and say so if the answer changed."""
        live = await self.registry.report(self.me, self.fingerprint)
        found = await disagreements(self.registry, self.fingerprint, live)
        if found and {d.digest for d in found} != {d.digest for d in self.found}:
            log.error(
                EVENT_MISMATCH,
                role=self.me.role,
                fingerprint=self.fingerprint.digest,
                differs_from=[{"processes": list(d.processes), "keys": list(d.keys)} for d in found],
                hint="every worker and callq serve of one deployment must run the same configuration; "
                "finish the rolling change, or fix the odd one out and restart it",
            )
        elif not found and self.found:
            log.info(EVENT_AGREED, role=self.me.role, fingerprint=self.fingerprint.digest)
        self.found = found
        self.on_mismatch(bool(found))
        return found

    async def run(self) -> None:
        """Check every ``refresh_s`` until cancelled; a failure is logged and the next check comes."""
        while True:
            await asyncio.sleep(self.refresh_s)
            try:
                await self.check()
            except RedisError as exc:
                log.warning("config.refresh_failed", error=type(exc).__name__)
            except Exception:  # drift detection must never stop a worker, nor stop for good
                log.exception("config.refresh_failed")

    async def withdraw(self) -> None:
        """Leave the registry (a clean stop). Bounded: with Redis away the client's retries would hold
        a shutdown for a minute; the entry then simply expires."""
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            async with asyncio.timeout(WITHDRAW_TIMEOUT_S):
                await self.registry.withdraw(self.me)


def serve_config_check(watch: ConfigWatch) -> Callable[[], Awaitable[str]]:
    """The ``config`` check of serve's ``/readyz``: ``ok`` unless serve's configuration differs from
    that of every live worker (a mix during a rolling change is ``ok``; the gauge shows it)."""

    async def check() -> str:
        workers = [p for p in await watch.registry.live() if p.role == "worker"]
        if not workers or any(p.digest == watch.fingerprint.digest for p in workers):
            return "ok"
        found = await disagreements(watch.registry, watch.fingerprint, workers)
        keys = sorted({key for d in found for key in d.keys})
        return f"differs from every live worker: {', '.join(keys)}"

    return check
