"""Job ids of intake entries: stable on redelivery, unguessable from the entry id (issue 11)."""

from __future__ import annotations

import asyncio
import json

from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxHandle
from producers.api import Producer
from producers.stream import IntakeConsumer, entry_job_id
from schemas.store.keys import Keys
from schemas.store.secret import deployment_secret
from schemas.wire.job import legacy_intake_job_id
from tests.support.helpers import make_settings, running_worker, sandbox_portal, wait_outcomes

JOB = {"from_line": "reg1332", "to_number": "+79111234567", "text_to_pronounce": "Hi"}


async def test_an_entrys_job_id_is_an_hmac_of_its_entry_id(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """An XADDed entry becomes a job whose id does not contain the entry id; its outcome names the entry."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    entry_id = (await redis.xadd(Keys(prefix).intake, {"job": json.dumps(JOB)})).decode()
    async with running_worker(settings):
        (outcome,) = await wait_outcomes(redis, prefix, 1)
    assert (outcome["status"], outcome["intake_id"]) == ("succeeded", entry_id)
    assert outcome["job_id"] == await entry_job_id(redis, Keys(prefix), entry_id)
    assert entry_id not in outcome["job_id"] and entry_id.split("-")[0] not in outcome["job_id"]
    assert len(sandbox.calls()) == 1


async def test_an_entry_a_0_2_worker_admitted_keeps_its_job_when_taken_over(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """An entry admitted under the old id (s + entry id) by a worker that died before XACK is the same job
    when this version takes it over: one call, one outcome, the old id."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    keys = Keys(prefix)
    producer = Producer(redis, settings=settings)
    entry_id = (await redis.xadd(keys.intake, {"job": json.dumps(JOB)})).decode()
    await IntakeConsumer(redis, producer=producer, keys=keys, consumer="old").ensure_group()
    await redis.xreadgroup("callq", "old", {keys.intake: ">"}, count=10)
    # what 0.2 did before dying: store the job under s<entry id>, no acknowledgement
    await producer.submit(json.dumps(JOB), job_id=legacy_intake_job_id(entry_id), intake_id=entry_id)
    heir = IntakeConsumer(redis, producer=producer, keys=keys, consumer="heir", claim_idle_ms=0)
    assert await heir.take_over_abandoned() == 1
    async with running_worker(settings):
        outcomes = await wait_outcomes(redis, prefix, 1)
    assert [(o["job_id"], o["status"]) for o in outcomes] == [(legacy_intake_job_id(entry_id), "succeeded")]
    assert len(sandbox.calls()) == 1


async def test_the_secret_is_made_once_and_kept_by_running_consumers(
    redis_url: str, prefix: str, redis: Redis, portal: SandboxHandle
) -> None:
    """Processes racing to make the secret all get one; a consumer puts back the one it holds if it is lost,
    so an entry delivered again after the loss is still the same job."""
    keys = Keys(prefix)
    secrets = await asyncio.gather(*(deployment_secret(redis, keys) for _ in range(10)))
    assert len(set(secrets)) == 1 and len(secrets[0]) == 64
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    consumer = IntakeConsumer(redis, producer=Producer(redis, settings=settings), keys=keys, consumer="c")
    await consumer.ensure_group()
    entry_id = (await redis.xadd(keys.intake, {"job": json.dumps(JOB)})).decode()
    assert await consumer.step() == 1
    first = await entry_job_id(redis, keys, entry_id)
    await redis.delete(keys.secret)
    await redis.xadd(keys.intake, {"job": json.dumps({**JOB, "to_number": "+79110000000"})})
    assert await consumer.step() == 1
    assert await redis.get(keys.secret) == secrets[0], "the running consumer put its secret back"
    assert await entry_job_id(redis, keys, entry_id) == first
