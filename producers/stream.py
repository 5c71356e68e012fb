"""The Redis Stream way in: any language ``XADD {p}:intake * job '<json>'``.

Entries are read through the consumer group ``callq``; an entry is acknowledged (and deleted)
only after it is stored as a job or as a rejection. The job id is derived from the entry id (an
HMAC keyed by the deployment's secret, :func:`schemas.wire.job.intake_job_id`), so an entry delivered
twice (a consumer died before its XACK) is the same job, not a second call, yet nobody can guess a
job id from an entry id. Entries left pending by a consumer that died are taken over with
XAUTOCLAIM; one admitted by a worker of 0.2 or earlier keeps the job id it got then.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import secrets
import socket
from collections.abc import Callable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from producers.api import Producer
from producers.validation import FieldError, Invalid
from schemas.store.errors import write_refusal
from schemas.store.keys import INTAKE_GROUP, Keys
from schemas.store.records import decode_text
from schemas.store.secret import deployment_secret, derive_key
from schemas.store.writegate import WriteGate
from schemas.wire.job import intake_job_id, legacy_intake_job_id

log = structlog.get_logger("callq.intake")

INTAKE_ID_PURPOSE = "intake job id"
"""What the deployment's secret is derived for here (:func:`schemas.store.secret.derive_key`)."""


async def entry_job_id(redis: Redis, keys: Keys, entry_id: str) -> str:
    """The job id the intake gives (or gave) entry ``entry_id`` (for ops and tests; the job also says
    ``intake_id``)."""
    if await redis.exists(keys.job(legacy := legacy_intake_job_id(entry_id))):
        return legacy
    return intake_job_id(entry_id, derive_key(await deployment_secret(redis, keys), INTAKE_ID_PURPOSE))


def consumer_name() -> str:
    """A consumer name unique to this process."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class IntakeConsumer:
    """Reads ``{p}:intake`` and admits every entry through :class:`Producer`.

    Args:
        redis: client for the stream (blocking reads hold one pooled connection).
        producer: the admission path.
        keys: key names.
        consumer: this consumer's name in the group.
        batch: entries read per call.
        block_ms: how long one read waits for new entries.
        claim_idle_ms: entries pending this long on another consumer are taken over.
        on_admitted: called with each entry's resulting status (for metrics).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        producer: Producer,
        keys: Keys,
        consumer: str | None = None,
        batch: int = 100,
        block_ms: int = 1000,
        claim_idle_ms: int = 60_000,
        on_admitted: Callable[[str], None] | None = None,
    ) -> None:
        self.redis = redis
        self.producer = producer
        self.keys = keys
        self.consumer = consumer or consumer_name()
        self.batch = batch
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.processed = 0
        self.on_admitted = on_admitted
        self._secret: bytes | None = None

    async def _id_key(self) -> bytes:
        """The key of intake job ids, from the deployment's secret (read, or put back, each batch:
        every consumer must derive the same ids, even if the secret's key was lost meanwhile)."""
        self._secret = await deployment_secret(self.redis, self.keys, keep=self._secret)
        return derive_key(self._secret, INTAKE_ID_PURPOSE)

    async def _job_ids(self, entry_ids: list[str], *, redelivered: bool) -> dict[str, str]:
        """Entry id -> job id. A redelivered entry that a 0.2 worker admitted keeps that job's id."""
        key = await self._id_key()
        ids = {entry_id: intake_job_id(entry_id, key) for entry_id in entry_ids}
        if redelivered and entry_ids:
            async with self.redis.pipeline(transaction=False) as pipe:
                for entry_id in entry_ids:
                    pipe.exists(self.keys.job(legacy_intake_job_id(entry_id)))
                found = await pipe.execute()
            ids.update(
                {e: legacy_intake_job_id(e) for e, exists in zip(entry_ids, found, strict=True) if exists}
            )
        return ids

    async def ensure_group(self) -> None:
        """Create the group at the start of the stream, so entries added before any worker ran count."""
        try:
            await self.redis.xgroup_create(self.keys.intake, INTAKE_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set."""
        await self.ensure_group()
        await self.step(pending=True)  # what this consumer name left unacknowledged
        while not stop.is_set():
            await self.take_over_abandoned()
            if await self.step() == 0 and stop.is_set():
                break

    async def step(self, *, pending: bool = False) -> int:
        """Read and admit one batch. Returns how many entries were handled."""
        reply = await self.redis.xreadgroup(
            INTAKE_GROUP,
            self.consumer,
            {self.keys.intake: "0" if pending else ">"},
            count=self.batch,
            block=None if pending else self.block_ms,
        )
        entries = [entry for _stream, batch in reply or [] for entry in batch]
        await self.admit(entries, redelivered=pending)
        return len(entries)

    async def take_over_abandoned(self) -> int:
        """XAUTOCLAIM entries idle on dead consumers and admit them."""
        reply = await self.redis.xautoclaim(
            self.keys.intake, INTAKE_GROUP, self.consumer, min_idle_time=self.claim_idle_ms, count=self.batch
        )
        entries = reply[1] if reply else []
        if entries:
            log.warning("intake.took_over", count=len(entries))
            await self.admit(entries, redelivered=True)
        return len(entries)

    async def admit(self, entries: list[tuple[Any, Any]], *, redelivered: bool = False) -> None:
        """Admit a batch (valid jobs stored in one round trip), then acknowledge and delete it.

        ``redelivered``: the entries were delivered before (taken over, or pending on this consumer).
        """
        if not entries:
            return
        job_ids = await self._job_ids([_text(raw_id) for raw_id, _ in entries], redelivered=redelivered)
        done: list[str] = []
        batch: list[tuple[str | bytes, str, str | None]] = []
        statuses: list[str] = []
        for raw_id, fields in entries:
            entry_id = _text(raw_id)
            done.append(entry_id)
            if fields is None:  # deleted while pending: nothing left to admit
                continue
            payload = _field(fields, "job")
            if payload is None:
                names = ", ".join(sorted(_text(k) for k in fields)) or "none"
                problem = FieldError("job", f"the entry has no 'job' field (fields: {names})"[:500])
                rejected = await self.producer.reject(
                    job_ids[entry_id], Invalid(errors=(problem,), echo={}), intake_id=entry_id
                )
                statuses.append(str(rejected.status))
            else:
                batch.append((payload, job_ids[entry_id], entry_id))
        try:
            statuses += [str(s.status) for s in await self.producer.submit_many(batch)]
        except RedisError:
            raise  # nothing acknowledged: the batch is read again
        except Exception:
            # a bug must not jam the stream on one entry forever: admit the batch one by one, and
            # an entry that still fails is rejected with what went wrong
            log.exception("intake.batch_failed", size=len(batch))
            statuses += [
                await self._admit_alone(payload, job_id, entry_id) for payload, job_id, entry_id in batch
            ]
        if self.on_admitted is not None:
            for status in statuses:
                self.on_admitted(status)
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.xack(self.keys.intake, INTAKE_GROUP, *done)
            pipe.xdel(self.keys.intake, *done)
            await pipe.execute()
        self.processed += len(done)

    async def _admit_alone(self, payload: str | bytes, job_id: str, entry_id: str | None) -> str:
        try:
            return str((await self.producer.submit(payload, job_id=job_id, intake_id=entry_id)).status)
        except RedisError:
            raise
        except Exception as exc:
            log.exception("intake.entry_failed", intake_id=entry_id)
            problem = FieldError("", f"could not be admitted: {type(exc).__name__}")
            rejected = await self.producer.reject(
                job_id, Invalid(errors=(problem,), echo={}), intake_id=entry_id
            )
            return str(rejected.status)


_text = functools.partial(decode_text, errors="replace")
"""Text of what a producer wrote: a field name that is not UTF-8 must not stop the stream."""


def _field(fields: dict[Any, Any], name: str) -> bytes | str | None:
    for key, value in fields.items():
        if _text(key) == name:
            return value  # type: ignore[no-any-return]
    return None


async def keep_consuming(consumer: IntakeConsumer, stop: asyncio.Event, gate: WriteGate) -> None:
    """Run the intake consumer until ``stop``; a Redis hiccup is logged and retried, never fatal.

    While Redis is full nothing is acknowledged: the entries read are admitted once it takes writes
    again (``gate`` logs that once, not a traceback per try).
    """
    delay = 0.5
    while not stop.is_set():
        try:
            await consumer.run(stop)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            refusal = write_refusal(exc)
            if refusal is not None:
                gate.refused("intake", refusal)
                wait = max(gate.wait_s(), 0.5)
            else:
                log.exception("intake.failed", retry_in_s=delay)
                wait, delay = delay, min(delay * 2, 30.0)
        else:
            delay = 0.5
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait)
