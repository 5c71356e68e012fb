"""The dead-letter store: list, show, replay and purge jobs that ended ``dead``.

A dead job's record is kept (no TTL) with the job and every attempt (time, HTTP status, error code
and description) and indexed in ``{p}:dead`` by time of death. A replay is a fresh job with fresh
attempts, admitted like any other (business hours, dedupe, a new default deadline counted from now),
linked both ways (``replay_of`` on the new job and its outcome, ``replayed_by`` on the dead one); it
takes over the dead job's idempotency key. A replayed job leaves the dead index and then expires like
any finished record.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from redis.asyncio import Redis

from producers.api import Producer, Submitted
from producers.results import ReplayRefused
from producers.validation import Invalid, validate_job
from schemas.states import Status
from schemas.store.records import JobRecord, decode_text, to_ms


@dataclass(frozen=True)
class Replayed:
    """What a replay did: the dead job, and what became of its replay."""

    original: str
    submitted: Submitted | None
    error: str | None = None


class DeadLetters:
    """Dead jobs of one deployment.

    Args:
        producer: the admission path (replays go through it) and its ledger.
    """

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.ledger = producer.ledger
        self.redis: Redis = producer.ledger.redis
        self.keys = producer.ledger.keys

    async def list(
        self,
        *,
        portal: str | None = None,
        code: str | None = None,
        limit: int = 100,
        before: datetime | None = None,
    ) -> list[JobRecord]:
        """Dead jobs, oldest first, filtered by portal and error code (case-insensitive)."""
        high = to_ms(before) if before else "+inf"
        ids = [decode_text(m) for m in await self.redis.zrangebyscore(self.keys.dead, "-inf", high)]
        found: list[JobRecord] = []
        for start in range(0, len(ids), 500):
            async with self.redis.pipeline(transaction=False) as pipe:
                for job_id in ids[start : start + 500]:
                    pipe.exists(self.keys.job(job_id))
                present = await pipe.execute()
            for job_id, exists in zip(ids[start : start + 500], present, strict=True):
                if not exists:
                    continue
                record = await self.ledger.read(job_id)
                if record is None or record.state != Status.DEAD:
                    continue
                if portal not in (None, record.job.portal) or not _code_matches(record, code):
                    continue
                found.append(record)
                if len(found) >= limit:
                    return found
        return found

    async def show(self, ident: str, *, portal: str | None = None) -> JobRecord | None:
        """A dead job by job id or idempotency key (None if there is none, or it is not dead).

        Raises:
            AmbiguousKeyError: ``ident`` is a key on several portals and ``portal`` is None.
        """
        record = await self.producer.status(ident, portal=portal)
        return record if record is not None and record.state == Status.DEAD else None

    async def replay(self, job_id: str) -> Replayed:
        """Replay one dead job as a fresh job (the dead one is marked replayed in the same script
        that admits the new one, or records its outcome if it cannot run)."""
        record = await self.ledger.read(job_id)
        if record is None or record.state != Status.DEAD:
            return Replayed(original=job_id, submitted=None, error="not a dead job")
        old = record.job
        fields = {
            "portal": old.portal,
            "from_line": old.from_line,
            "to_number": old.to_number,
            "text_to_pronounce": old.text_to_pronounce,
            "voice": old.voice,
            "idempotency_key": old.idempotency_key,
            "metadata": old.metadata,
        }
        now = self.producer.clock()
        job_fields = {k: v for k, v in fields.items() if v is not None}
        result = validate_job(
            job_fields, settings=self.producer.settings, now=now, job_id=self.producer.id_factory()
        )
        if isinstance(result, Invalid):
            return Replayed(original=job_id, submitted=None, error=result.description)
        job = dataclasses.replace(result.job, replay_of=job_id)
        try:
            if result.run_at is None:
                submitted = await self.producer.expire_on_arrival(job, reason=result.expired_reason, now=now)
            else:
                submitted = await self.producer.admit(job, run_at=result.run_at, now=now)
        except ReplayRefused as refused:  # already replayed (or purged) by someone else
            return Replayed(original=job_id, submitted=None, error=refused.reason)
        return Replayed(original=job_id, submitted=submitted)

    async def purge(self, *, older_than: timedelta | None = None, now: datetime) -> int:
        """Delete dead jobs (that died more than ``older_than`` ago), each in one script. Returns how many."""
        high = to_ms(now - older_than) if older_than else "+inf"
        ids = [decode_text(m) for m in await self.redis.zrangebyscore(self.keys.dead, "-inf", high)]
        purged = 0
        for start in range(0, len(ids), 500):
            purged += await self.ledger.purge(ids[start : start + 500])
        return purged


def _code_matches(record: JobRecord, code: str | None) -> bool:
    if code is None:
        return True
    error = (record.outcome or {}).get("error") or {}
    return str(error.get("code", "")).lower() == code.lower()
