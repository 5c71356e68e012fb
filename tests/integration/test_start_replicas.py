"""``start_replicas``: a request goes out only once Redis replicas hold the record that it did.

A failover that loses the last writes would otherwise lose an attempt's START, and the promoted
replica would run the job again: the number called twice. With ``start_replicas = 1`` the START is
followed by ``WAIT 1`` on the same connection; without the replica's acknowledgement in time,
nothing is sent and the job waits (its attempt not spent). A private master and replica.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from ops.redis_server import RedisServer
from ops.sandbox import Sandbox, SandboxHandle
from producers.api import Producer
from schemas.config import Settings
from schemas.store.keys import Keys
from schemas.store.ledger import Ledger
from tests.support.helpers import called_numbers, make_settings, sandbox_portal, wait_for
from worker.bitrix.address import PortalAddresses
from worker.bitrix.oauth import PortalAuth
from worker.jobs.deps import Deps
from worker.jobs.leases import AttemptLeases, LeaseTiming
from worker.jobs.ratelimit import RateLimiter
from worker.jobs.run import run_job

NUMBER = "+79111234567"


async def run_once(redis: Redis, settings: Settings, job_id: str) -> float | None:
    """Run the job once, in this process."""
    ledger = Ledger(redis, keys=Keys(settings.key_prefix), retention_s=60, outcomes_maxlen=100)
    async with aiohttp.ClientSession() as session:
        deps = Deps(
            settings=settings,
            ledger=ledger,
            session=session,
            limiter=RateLimiter(redis, keys=Keys(settings.key_prefix)),
            auth=PortalAuth(redis, prefix=settings.key_prefix, session=session),
            addresses=PortalAddresses(redis, Keys(settings.key_prefix)),
            leases=AttemptLeases(ledger, timing=LeaseTiming()),
        )
        return await run_job(deps, job_id)


async def test_without_the_replicas_acknowledgement_nothing_is_sent(
    prefix: str, tmp_path: Path, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """No replica: the START is not acknowledged, no call, attempt not spent; a replica later: one call."""
    (tmp_path / "master").mkdir()
    (tmp_path / "replica").mkdir()
    with RedisServer(tmp_path / "master") as master:
        redis = Redis.from_url(master.url)
        base = make_settings(master.url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
        settings = dataclasses.replace(base, start_replicas=1, start_replicas_timeout_s=0.2)
        submitted = await Producer(redis, settings=settings).enqueue(
            from_line="reg1332", to_number=NUMBER, text_to_pronounce="Callback request"
        )

        again = await run_once(redis, settings, submitted.job_id)

        assert sandbox.calls() == []
        record = await Ledger(redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=100).read(
            submitted.job_id
        )
        assert record is not None and record.state == "retrying"
        assert again is not None and again >= 1.0
        (entry,) = record.attempt_log
        assert entry["counts"] is False and "replicas" in entry["description"]

        extra = ("--replicaof", "127.0.0.1", str(master.port))
        with RedisServer(tmp_path / "replica", extra_args=extra) as replica:
            replica_redis = Redis.from_url(replica.url)

            async def in_sync() -> bool:
                info = await replica_redis.info("replication")
                return bool(info.get("master_link_status") == "up")

            await wait_for(in_sync, timeout_s=10, what="the replica to sync")
            await redis.zadd(Keys(prefix).queue, {Keys(prefix).jobs.member(submitted.job_id): 0})
            patient = dataclasses.replace(settings, start_replicas_timeout_s=10)  # a loaded machine
            assert await run_once(redis, patient, submitted.job_id) is None
            await replica_redis.aclose()
        record = await Ledger(redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=100).read(
            submitted.job_id
        )
        assert record is not None and record.state == "succeeded"
        assert called_numbers(sandbox) == [NUMBER]
        await redis.aclose()
