"""The Python way in, and the one admission path every other way in goes through.

>>> producer = Producer(redis, settings=settings)
>>> submitted = await producer.enqueue(from_line="reg1332", to_number="+79111234567",
...                                    text_to_pronounce="Callback from the website")
>>> submitted.job_id, submitted.new, submitted.status
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Collection, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

import structlog
from redis.asyncio import Redis

from producers import finals
from producers.idempotency import differences
from producers.lookup import find_record
from producers.results import AmbiguousKeyError, PortalNotAllowed, ReplayRefused, Submitted
from producers.validation import Invalid, Valid, decode_entry, unknown_voice, validate_job
from schemas.clock import Clock, utcnow
from schemas.config import Settings
from schemas.policy.bucket import pacing_bucket
from schemas.policy.redact import mask_number
from schemas.states import CallState, Status, Step
from schemas.store.calls import CallStore, cancel_redial
from schemas.store.keys import Keys
from schemas.store.ledger import AdmitRequest, Ledger
from schemas.store.records import JobRecord
from schemas.store.replies import Admission, AdmitVerdict
from schemas.store.voices import offered_voices
from schemas.wire.codes import ErrorCode
from schemas.wire.job import CallbackJob
from schemas.wire.outcome import OutcomeError, outcome_for

__all__ = ["AmbiguousKeyError", "PortalNotAllowed", "Producer", "Submitted", "new_job_id", "utcnow"]

log = structlog.get_logger("callq.producers")

# A pending job's arq key and claim outlive its deadline by this much, so that neither can
# expire inside Redis while the job may still run (a late retry, a slow worker).
PENDING_MARGIN = timedelta(days=1)


def new_job_id() -> str:
    """A random job id: 20 hex characters (80 bits)."""
    return secrets.token_hex(10)


class Producer:
    """Validates, dedupes and stores callback jobs; reads and cancels them.

    Args:
        redis: a ``redis.asyncio.Redis`` client (owned by the caller).
        settings: the loaded configuration.
        clock: returns the current aware time (tests pass a fixed one).
        id_factory: makes job ids.
        dedupe_and_pacing: line + number dedupe and admission pacing; off only in benchmarks that
            measure what they cost (idempotency keys are always honoured).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        settings: Settings,
        clock: Clock = utcnow,
        id_factory: Callable[[], str] = new_job_id,
        dedupe_and_pacing: bool = True,
    ) -> None:
        self.settings = settings
        self.dedupe_and_pacing = dedupe_and_pacing
        self.clock = clock
        self.id_factory = id_factory
        self._scoped: dict[frozenset[str], Settings] = {}
        self.redis, self.keys = redis, Keys(settings.key_prefix)
        self.ledger = Ledger.for_settings(redis, settings)

    async def enqueue(
        self,
        *,
        from_line: str,
        to_number: str,
        text_to_pronounce: str | None = None,
        voice: str | None = None,
        portal: str | None = None,
        not_before: datetime | str | None = None,
        deadline: datetime | str | None = None,
        idempotency_key: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Submitted:
        """Submit one callback by keyword (the fields of contract §3); datetimes must be aware."""
        fields: dict[str, Any] = {
            "from_line": from_line,
            "to_number": to_number,
            "text_to_pronounce": text_to_pronounce,
            "voice": voice,
            "portal": portal,
            "not_before": not_before.isoformat() if isinstance(not_before, datetime) else not_before,
            "deadline": deadline.isoformat() if isinstance(deadline, datetime) else deadline,
            "idempotency_key": idempotency_key,
            "metadata": metadata,
        }
        return await self.submit({k: v for k, v in fields.items() if v is not None})

    async def submit(
        self,
        raw: str | bytes | dict[str, Any],
        *,
        job_id: str | None = None,
        intake_id: str | None = None,
        scope: Collection[str] | None = None,
    ) -> Submitted:
        """Submit one job as JSON text or a decoded object. Never raises for bad input.

        Args:
            raw: the job.
            job_id: the id to use (the stream intake derives it from the entry id, so a
                redelivered entry is the same job); a fresh one by default.
            intake_id: the intake stream entry id, echoed in the outcome.
            scope: the portals this submission may use (an HTTP token's); None for every one.
                Within a scope, ``portal`` may be left out when the scope has a single portal.

        Returns:
            What happened; a rejection is also recorded as an outcome.

        Raises:
            PortalNotAllowed: the job names a portal outside ``scope``; nothing is recorded.
        """
        now = self.clock()
        job_id = job_id or self.id_factory()
        settings = self.settings
        if scope is not None:
            raw, settings = self._within(scope, raw)
        result = await self._with_voice(
            validate_job(raw, settings=settings, now=now, job_id=job_id, intake_id=intake_id)
        )
        if isinstance(result, Invalid):
            return await self.reject(job_id, result, intake_id=intake_id)
        if result.run_at is None:
            return await self.expire_on_arrival(result.job, reason=result.expired_reason, now=now)
        return await self.admit(result.job, run_at=result.run_at, now=now, deadline_sent=result.deadline_sent)

    async def _with_voice(self, result: Valid | Invalid) -> Valid | Invalid:
        """``result``, or a rejection when the job's own voice is not one its portal offers (a list
        known in Redis; a job without a voice of its own costs no read)."""
        if isinstance(result, Invalid) or not result.voice_sent:
            return result
        offered = await offered_voices(self.redis, self.keys, result.job.portal)
        return unknown_voice(result, offered) or result

    def _within(
        self, scope: Collection[str], raw: str | bytes | dict[str, Any]
    ) -> tuple[str | bytes | dict[str, Any], Settings]:
        """The input (decoded when it could be) and the settings a scoped submission sees: only the
        portals of ``scope``, so that neither a default nor an error message names another."""
        data = decode_entry(raw)
        if isinstance(data, dict):
            raw = data
            named = data.get("portal")
            if isinstance(named, str) and named not in scope:
                raise PortalNotAllowed(named)
        key = frozenset(scope)
        if key not in self._scoped:
            portals = {name: p for name, p in self.settings.portals.items() if name in key}
            self._scoped[key] = dataclasses.replace(self.settings, portals=MappingProxyType(portals))
        return raw, self._scoped[key]

    async def submit_many(
        self, entries: Sequence[tuple[str | bytes, str, str | None]], *, settings: Settings | None = None
    ) -> list[Submitted]:
        """Submit a batch of (raw JSON, job id, intake id): validated one by one, stored in one round trip.

        What a single :meth:`submit` does for each, with the ADMIT scripts of the valid jobs pipelined
        (the intake reads entries in batches; this keeps its throughput above a loop of
        ``enqueue_job``). Rejections, expiries and duplicates are recorded as usual. ``settings``: a
        narrower view of the portals (a scoped bulk import's, :mod:`producers.bulk`).
        """
        now = self.clock()
        settings = settings or self.settings
        results: list[Submitted | None] = []
        valid: list[tuple[int, Valid, datetime]] = []
        for raw, job_id, intake_id in entries:
            result = await self._with_voice(
                validate_job(raw, settings=settings, now=now, job_id=job_id, intake_id=intake_id)
            )
            if isinstance(result, Invalid):
                results.append(await self.reject(job_id, result, intake_id=intake_id))
            elif result.run_at is None:
                results.append(
                    await self.expire_on_arrival(result.job, reason=result.expired_reason, now=now)
                )
            else:
                valid.append((len(results), result, result.run_at))
                results.append(None)
        requests = [self._request(v.job, run_at=run_at, now=now) for _, v, run_at in valid]
        admissions = await self.ledger.admit_many(requests, now=now)
        for (index, v, run_at), admission in zip(valid, admissions, strict=True):
            settled = self._settle(v.job, admission, run_at=run_at, now=now, deadline_sent=v.deadline_sent)
            results[index] = await settled
        return [r for r in results if r is not None]

    async def admit(
        self,
        job: CallbackJob,
        *,
        run_at: datetime,
        now: datetime,
        deadline_sent: bool = True,
    ) -> Submitted:
        """Store a validated job (dedupe, schedule); a job that replays a dead one
        (``job.replay_of``) marks it replayed and takes its idempotency key over, in the same step.

        ``deadline_sent``: whether the producer gave the deadline (a repeat of a known key is
        compared on it only then, :mod:`producers.idempotency`).
        """
        request = self._request(job, run_at=run_at, now=now)
        admission = await self.ledger.admit(request, now=now)
        return await self._settle(job, admission, run_at=run_at, now=now, deadline_sent=deadline_sent)

    def _request(self, job: CallbackJob, *, run_at: datetime, now: datetime) -> AdmitRequest:
        deadline = job.deadline_at or run_at
        pending_ttl = (max(deadline, run_at) - now + PENDING_MARGIN).total_seconds()
        portal = self.settings.portals[job.portal]
        # A job due now takes its rate-limit slot on arrival; a paced line's job takes its line
        # slot first, in the worker.
        paced = portal.line(job.from_line).min_interval_s > 0
        bucket = None if paced or not self.dedupe_and_pacing else pacing_bucket(portal.rate, portal.burst)
        return AdmitRequest(
            job=job, run_at=run_at, pending_ttl_s=pending_ttl, bucket=bucket, claim=self.dedupe_and_pacing
        )

    async def _settle(
        self, job: CallbackJob, admission: Admission, *, run_at: datetime, now: datetime, deadline_sent: bool
    ) -> Submitted:
        """What an admission means for the producer (and the outcome a non-new one needs)."""
        if admission.verdict is AdmitVerdict.REFUSED:
            raise ReplayRefused(admission.job_id)
        if admission.verdict is AdmitVerdict.NEW:
            # DEBUG: at INFO a job's one line is its outcome's (job.finished, in the worker); a line
            # per admission too cost as much CPU as it (redaction, rendering) on the intake's path
            log.debug(
                "job.scheduled",
                job_id=job.job_id,
                portal=job.portal,
                line=job.from_line,
                run_at=run_at.isoformat(),
                to_number=mask_number(job.to_number),
            )
            return Submitted(job_id=job.job_id, status=Status.SCHEDULED, new=True, run_at=run_at)
        if admission.verdict is AdmitVerdict.DUPLICATE:
            return await finals.duplicate(self.ledger, job, holder=admission.job_id, now=now)
        # idempotent: the key's holder, or this very job (a redelivered intake entry)
        record = await self.ledger.read(admission.job_id)
        if admission.job_id != job.job_id and record is not None:
            differing = differences(record.job, job, deadline_sent=deadline_sent)
            if differing:
                return await finals.key_reused(
                    self.ledger, job, holder=admission.job_id, differing=differing, now=now
                )
        if job.intake_id is not None and admission.job_id != job.job_id:
            # An intake entry must end in an outcome of its own: a repeat of a known key is a
            # duplicate of the job that holds the key (and makes no new job, no call).
            return await finals.duplicate(self.ledger, job, holder=admission.job_id, now=now)
        log.info(
            "job.idempotent_repeat",
            job_id=job.job_id,
            portal=job.portal,
            line=job.from_line,
            existing_job_id=admission.job_id,
        )
        return Submitted(
            job_id=admission.job_id,
            status=record.state if record else Status.SCHEDULED,
            new=False,
            run_at=record.run_at if record else None,
            duplicate_of=(record.outcome or {}).get("duplicate_of") if record else None,
        )

    async def reject(self, job_id: str, invalid: Invalid, *, intake_id: str | None = None) -> Submitted:
        """Record input that cannot become a job as a ``rejected`` outcome."""
        return await finals.reject(self.ledger, job_id, invalid, now=self.clock(), intake_id=intake_id)

    async def expire_on_arrival(self, job: CallbackJob, *, reason: str | None, now: datetime) -> Submitted:
        """Record a valid job that can never run before its deadline as ``expired``."""
        return await finals.expire(self.ledger, job, reason=reason, now=now)

    async def status(
        self, ident: str, *, portal: str | None = None, scope: Collection[str] | None = None
    ) -> JobRecord | None:
        """The record of a job, by job id (global) or idempotency key (per portal).

        Args:
            ident: a job id, or an idempotency key.
            portal: look only on this portal (a job id of a job elsewhere is not found).
            scope: the portals the caller may see (None: every one); a job elsewhere is not found.

        Returns:
            The record, or None.

        Raises:
            AmbiguousKeyError: ``ident`` is not a job id and is an idempotency key on several of the
                portals looked at; name one with ``portal``.
        """
        return await find_record(
            self.ledger, ident, portals=list(self.settings.portals), portal=portal, scope=scope
        )

    async def cancel(
        self,
        ident: str,
        *,
        portal: str | None = None,
        scope: Collection[str] | None = None,
        by: str = "api",
    ) -> tuple[bool, JobRecord | None]:
        """Cancel a job that has not started, or the redial a succeeded job waits for. Returns
        (cancelled now, the record afterwards).

        ``ident``, ``portal`` and ``scope`` find the job as :meth:`status` does (and it raises
        :class:`AmbiguousKeyError` the same way). A waiting redial (call ``redial``) ends with its
        final call result, ``ended_by: cancelled`` and ``detail`` naming ``by`` (who: a token's name,
        ``callq cancel``); one already ``dialling`` cannot be cancelled (:func:`not_cancellable`).
        """
        record = await self.status(ident, portal=portal, scope=scope)
        if record is not None and record.call is not None and record.call.state is CallState.REDIAL:
            store = CallStore.for_settings(self.redis, self.settings)
            written = await cancel_redial(store, self.settings, record, by=by, now=self.clock())
            if written.done:
                log.info(
                    "job.redial_cancelled",
                    job_id=record.job_id,
                    portal=record.job.portal,
                    line=record.job.from_line,
                    by=by,
                )
            return written.done, await self.ledger.read(record.job_id)
        if record is None or record.state not in (Status.SCHEDULED, Status.RETRYING):
            return False, record
        now = self.clock()
        error = OutcomeError(code=ErrorCode.CANCELLED, description="cancelled before it started")
        outcome = outcome_for(record.job, Status.CANCELLED, at=now, attempts=record.attempts, error=error)
        result = await self.ledger.finalize(outcome, job=record.job, step=Step.CANCEL)
        if result.written:
            log.info(
                "job.cancelled",
                job_id=record.job_id,
                portal=record.job.portal,
                line=record.job.from_line,
                by=by,
            )
        return result.written, await self.ledger.read(record.job_id)


def not_cancellable(record: JobRecord) -> str:
    """Why ``record`` cannot be cancelled (what ``DELETE /v1/callbacks/{id}``'s 409, ``callq cancel``
    and the dashboard say)."""
    call = record.call
    if call is not None and call.state is CallState.DIALLING:
        return (
            f"job {record.job_id}'s redial is being dialled now (its request may be out): it can no longer "
            "be cancelled"
        )
    return (
        f"job {record.job_id} is {record.state}"
        + (f" (call {call.state})" if call is not None else "")
        + ": only a scheduled or retrying job, or a redial that waits, can be cancelled"
    )
