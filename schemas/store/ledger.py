"""The job record in Redis, shared by every producer and the worker: each state change of a job.

A job lives in one hash, ``{p}:job:{id}``: the normalised job (a short-named field per value,
:meth:`schemas.wire.job.CallbackJob.to_fields`; a ``job`` JSON for one final on arrival), its
state, ``run_at`` once it was put back (a job just admitted has none: its score in arq's queue
says it), an ``attempt:N`` entry per request made and, once final, its outcome (what of it the
record does not say already, :mod:`schemas.store.compact`). Every change of state is one script (:mod:`schemas.store.scripts`) checked against the state machine
(:mod:`schemas.states`), so a job is written final exactly once and its outcome is appended to
``{p}:outcomes`` in the same step. Reading is :class:`schemas.store.reads.RecordReader`'s.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from schemas.policy.bucket import EARLY_WAKE_S, PRECISE_WAIT_S, Bucket
from schemas.states import Status, Step
from schemas.store.compact import outcome_fields, pack_attempt
from schemas.store.keys import Keys
from schemas.store.reads import RecordReader
from schemas.store.records import decode_text, to_ms
from schemas.store.replies import Admission, FinalizeResult, Rescheduled, Start
from schemas.store.scripts import Scripts, in_pipeline
from schemas.store.stats import LATENCY_COUNT, LATENCY_SUM, MINUTE_TTL_MS, latency_field, minute_of
from schemas.wire.job import CallbackJob
from schemas.wire.outcome import Outcome, stored_attempt_entry, stored_outcome

if TYPE_CHECKING:
    from schemas.config import Settings

T = TypeVar("T")

STALE_MS = 2000
"""An orphan verdict is acted on only if Redis answered within this long since the lease was seen
lapsed: a command that waited out a stalled Redis may be overtaken by the owner's own writes."""


class WriteRetry(Protocol):
    """What to do with a write Redis refuses because it is full (``OutOfMemoryError``).

    The worker sends it again until Redis takes it (:meth:`schemas.store.writegate.WriteGate.until_written`):
    a job that called Bitrix24 must record what happened. Producers send it once and let the error
    reach whoever asked (:func:`send_once`), who can ask again.
    """

    async def __call__(self, write: Callable[[], Awaitable[T]], *, where: str) -> T: ...


async def send_once(write: Callable[[], Awaitable[T]], *, where: str) -> T:
    """The default :class:`WriteRetry`: one try; a refusal is raised to the caller."""
    return await write()


@dataclass(frozen=True)
class Reading:
    """A method's execution-time reading from a Bitrix24 answer, kept by FINALIZE in the same step
    (as :meth:`worker.jobs.ratelimit.RateLimiter.record_operating` keeps it on its own).

    Attributes:
        portal: the portal that answered.
        method: the method.
        reading_json: the reading, as JSON.
        finish_ms: the answer's finish (unix ms): the newest reading is kept.
        ttl_ms: how long the portal's readings are kept.
    """

    portal: str
    method: str
    reading_json: str
    finish_ms: int
    ttl_ms: int


@dataclass(frozen=True)
class SlotRequest:
    """The rate-limit slots an attempt's START takes in the same step (:meth:`Ledger.start_attempt`).

    Attributes:
        portal_bucket: the portal's bucket (:func:`schemas.policy.bucket.pacing_bucket`).
        line: the line whose pacing slot is taken, or None when the line is not paced.
        line_interval_ms: the line's ``min_interval`` in ms.
        line_lateness_ms: how late a held line slot may still be used.
        portal_lateness_ms: how late a held portal slot may still be used.
        deadline_ms: the job's deadline (unix ms), or 0: a slot at or past it puts the job back to
            wake at the deadline (and expire then).
    """

    portal_bucket: Bucket
    line: str | None
    line_interval_ms: float
    line_lateness_ms: float
    portal_lateness_ms: float
    deadline_ms: int = 0


@dataclass(frozen=True)
class AdmitRequest:
    """One job to admit.

    Attributes:
        job: the normalised job.
        run_at: when arq should first run it.
        pending_ttl_s: lifetime of the line + number claim while the job waits; must outlast the
            deadline (arq's job key has none: it leaves when the job runs or is cancelled).
        claim: dedupe on portal + line + number (off only to measure what it costs).
        bucket: for a job due now, the portal's bucket: the job's first run is spread by a *plan*
            bucket kept alongside the real one (the worker takes the real slot when it runs).

    A job that replays a dead one (``job.replay_of``) marks it replayed in the same step, and takes
    its idempotency key over.
    """

    job: CallbackJob
    run_at: datetime
    pending_ttl_s: float
    claim: bool = True
    bucket: Bucket | None = None


def _csv(states: Collection[str]) -> str:
    return ",".join(sorted(states))


class Ledger(RecordReader):
    """Reads and moves job records. Takes a Redis client; owns no connection.

    Args:
        redis: a ``redis.asyncio.Redis`` (``decode_responses`` may be either).
        keys: key names under the deployment prefix.
        retention_s: how long a final record stays readable by id.
        outcomes_maxlen: approximate length cap of the outcome stream.
        retry: what to do when Redis refuses a job's state change for being full (START, FINALIZE,
            RESCHEDULE, an attempt's entry); admission is never retried here.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        keys: Keys,
        retention_s: float,
        outcomes_maxlen: int,
        retry: WriteRetry = send_once,
    ) -> None:
        super().__init__(redis, keys=keys)
        self.retry = retry
        self.retention_ms = int(retention_s * 1000)
        self.outcomes_maxlen = outcomes_maxlen
        self.scripts = Scripts(redis)

    @classmethod
    def for_settings(cls, redis: Redis, settings: Settings, *, retry: WriteRetry = send_once) -> Ledger:
        """The deployment's ledger: key prefix, record retention and outcome stream cap from ``settings``."""
        return cls(
            redis,
            keys=Keys(settings.key_prefix),
            retention_s=settings.outcome_retention_s,
            outcomes_maxlen=settings.outcomes_maxlen,
            retry=retry,
        )

    async def admit(self, request: AdmitRequest, *, now: datetime) -> Admission:
        """Store a new job and schedule it, unless its idempotency key or line + number is taken."""
        (admission,) = await self.admit_many([request], now=now)
        return admission

    async def admit_many(self, requests: Sequence[AdmitRequest], *, now: datetime) -> list[Admission]:
        """Admit several jobs in one round trip (one admission script each, pipelined, not a
        transaction: each job is still admitted atomically on its own)."""

        async def build(pipe: Pipeline) -> None:
            for request in requests:
                keys, args = self._admission(request, now=now)
                await self.scripts.admit(keys=keys, args=args, client=pipe)

        replies = await in_pipeline(self.redis, build, transaction=False)
        return [Admission.parse(reply) for reply in replies]

    def _admission(
        self, request: AdmitRequest, *, now: datetime
    ) -> tuple[list[str], list[str | int | float]]:
        k, job = self.keys, request.job
        ttl_ms = max(int(request.pending_ttl_s * 1000), 1000)
        deadline = job.deadline_at
        bucket = request.bucket if request.run_at <= now else None
        keys = [
            k.job(job.job_id),
            k.idempotency(job.portal, job.idempotency_key) if job.idempotency_key else "",
            k.claim(job.portal, job.from_line, job.to_number) if request.claim else "",
            "",  # no arq job key: the worker runs callq's jobs from the queue entry (schemas.jobqueue.lane)
            k.queue,
            k.plan_bucket(job.portal) if bucket else "",
            k.portal_pause(job.portal),
            k.job(job.replay_of) if job.replay_of else "",
            k.dead,
            k.scheduled(job.portal),
            k.dead_on(job.portal),
        ]
        args: list[str | int | float] = [job.job_id, "", to_ms(request.run_at)]
        args += ["", ttl_ms, k.jobs.member(job.job_id), to_ms(now)]
        args += [bucket.interval_ms if bucket else 0, bucket.tolerance_ms if bucket else 0]
        args += [int(PRECISE_WAIT_S * 1000), int(EARLY_WAKE_S * 1000)]
        args += [to_ms(deadline) if deadline else to_ms(now) + ttl_ms, "1" if job.replay_of else "0"]
        args += [job.replay_of or "", self.retention_ms, *job.to_fields()]
        return keys, args

    async def record_final(
        self,
        outcome: Outcome,
        *,
        job: CallbackJob | None,
        idempotency_key: tuple[str, str] | None = None,
    ) -> FinalizeResult:
        """Create a record that is final from the start (rejected, duplicate, expired on arrival).

        A job that replays a dead one (``job.replay_of``) marks it replayed in the same step.

        Args:
            outcome: the outcome to store and append.
            job: the job when it could be normalised, else None.
            idempotency_key: (portal, key) to point at this record, for a duplicate.
        """
        k = self.keys
        return await self._finalize(
            stored_outcome(outcome, job),
            step=Step.RECORD,
            keys=["", k.idempotency(*idempotency_key) if idempotency_key else "", ""],
            job_json=job.to_json() if job else "null",
            replay_of=job.replay_of if job else None,
            job=job,
        )

    async def finalize(
        self,
        outcome: Outcome,
        *,
        job: CallbackJob,
        step: Step = Step.FINISH,
        expect: Collection[Status] = (),
        dedupe_window_s: float = 0,
        attempt: tuple[int, dict[str, Any]] | None = None,
        orphan_seen_ms: int | None = None,
        owner: str = "",
        then: Callable[[Pipeline], Awaitable[Any]] | None = None,
        reading: Reading | None = None,
    ) -> FinalizeResult:
        """Move a pending job to its final outcome, once.

        Args:
            outcome: the final outcome.
            job: the job, for its claim and idempotency keys.
            step: ``finish``, or ``cancel`` (which the state machine allows only before a start).
            expect: the states the job must be in (any the step allows, if empty).
            dedupe_window_s: after success, how long the line + number stays claimed.
            attempt: (number, entry) of the attempt that ended the job, stored in the same step.
            orphan_seen_ms: only if the job's attempt is orphaned: its lease lapsed, seen at this
                Redis time (:mod:`worker.jobs.orphans`); otherwise nothing is written (``busy``).
            owner: the lease token of the attempt whose worker writes (:attr:`Start.token`): only
                while the record holds it (``superseded`` once another attempt started).
            then: one more script to queue in the same MULTI (a success's call follow-up,
                :meth:`schemas.store.calls.CallStore.follow_in`): both are written, or neither.
            reading: an execution-time reading of the answer, kept in the same round trip
                (whatever the verdict).
        """
        k = self.keys
        succeeded = outcome.status == Status.SUCCEEDED
        keys = [
            k.claim(job.portal, job.from_line, job.to_number),
            k.idempotency(job.portal, job.idempotency_key) if job.idempotency_key else "",
            # a success ends a run of rate refusals on the portal (the pause doubles only within one)
            k.portal_strikes(job.portal) if succeeded else "",
        ]
        if attempt is not None:
            attempt = (attempt[0], stored_attempt_entry(attempt[1], job))
        return await self._finalize(
            stored_outcome(outcome, job),
            step=step,
            job=job,
            keys=keys,
            expect=_csv(expect),
            dedupe_window_s=dedupe_window_s,
            attempt=attempt,
            orphan_seen_ms=orphan_seen_ms,
            owner=owner,
            then=then,
            reading=reading,
        )

    async def _finalize(
        self,
        outcome: Outcome,
        *,
        step: Step,
        keys: list[str],
        expect: str = "",
        job_json: str = "",
        dedupe_window_s: float = 0,
        attempt: tuple[int, dict[str, Any]] | None = None,
        orphan_seen_ms: int | None = None,
        replay_of: str | None = None,
        owner: str = "",
        then: Callable[[Pipeline], Awaitable[Any]] | None = None,
        reading: Reading | None = None,
        job: CallbackJob | None = None,
    ) -> FinalizeResult:
        k, job_id = self.keys, outcome.job_id
        claim, idem, strikes = keys
        outcome_json = outcome.to_json()
        # the record keeps what of the outcome it does not say already (schemas.store.compact)
        record_outcome = outcome_fields(outcome_json, job)
        call_id = outcome.call_id if record_outcome is not None else None
        field, entry = (
            (f"attempt:{attempt[0]}", pack_attempt(attempt[1], call_id=call_id)) if attempt else ("", "")
        )
        script_keys = [k.job(job_id), claim, idem, k.outcomes, k.dead, k.jobs.job(job_id), k.queue, strikes]
        now_ms = to_ms(datetime.fromisoformat(outcome.finished_at))
        portal = outcome.portal
        script_keys += [k.running, k.job(replay_of) if replay_of else ""]
        script_keys += [k.scheduled(portal), k.dead_on(portal)] if portal else ["", ""]
        script_keys += [k.minute_stats(portal, minute_of(now_ms)) if portal else ""]
        duration_ms = attempt[1].get("duration_ms") if attempt else None
        latency: list[str | int] = ["", 0]
        if isinstance(duration_ms, int | float):
            latency = [latency_field(duration_ms), int(duration_ms)]
        args: list[str | int] = [job_id, str(outcome.status), outcome_json, self.retention_ms]
        args += [self.outcomes_maxlen, int(dedupe_window_s * 1000), now_ms, k.jobs.member(job_id)]
        # drop_arq: a final job leaves arq's queue in the same step (the worker's direct lane runs no
        # arq bookkeeping after it: schemas.jobqueue.lane), and so does a cancelled one or an orphan
        args += [str(step), expect, job_json, outcome.attempts, field, entry, "1"]
        args += ["" if orphan_seen_ms is None else orphan_seen_ms, STALE_MS, replay_of or "", owner]
        args += [*latency, MINUTE_TTL_MS]
        if reading is not None:
            script_keys.append(k.operating(reading.portal))
            args += [reading.method, reading.reading_json, reading.finish_ms, reading.ttl_ms]
        else:
            script_keys.append("")
            args += ["", "", "", ""]
        # arq's try counter: callq makes none, but a 0.2 worker that ran the job before it died did
        script_keys.append(k.jobs.retry(job_id))
        args += record_outcome or []
        if then is None:
            reply = await self.retry(
                lambda: self.scripts.finalize(keys=script_keys, args=args), where="finalize"
            )
            return FinalizeResult.parse(reply)
        follow_up = then

        async def build(pipe: Pipeline) -> None:
            await self.scripts.finalize(keys=script_keys, args=args, client=pipe)
            await follow_up(pipe)

        async def both() -> Any:
            return (await in_pipeline(self.redis, build, transaction=True))[0]

        return FinalizeResult.parse(await self.retry(both, where="finalize"))

    async def start_attempt(
        self,
        job_id: str,
        *,
        portal: str,
        now: datetime,
        info: dict[str, Any],
        lease_s: float,
        replicas: int = 0,
        replicas_timeout_s: float = 1.0,
        slots: SlotRequest | None = None,
    ) -> Start:
        """Record that a request is about to be sent; the record says ``running`` until it ends.

        The attempt takes a lease of ``lease_s`` in ``{p}:running``, which the worker keeps alive
        (:meth:`heartbeat`) while it works on it. If the record already says ``running``, the verdict
        is ``busy`` while that lease lives and ``interrupted`` once it lapsed; nothing is changed.
        If the portal is halted (credentials refused, manual block) or paused (rate refusal), the
        verdict is ``halted`` with ``halted_ms`` left, and nothing is changed.

        With ``replicas``, Redis waits (``WAIT``, on the same connection, up to ``replicas_timeout_s``)
        until that many replicas have the START; :attr:`Start.replicated` says whether they did.

        With ``slots``, the job's rate-limit slots (its line's pacing, its portal's bucket) are taken
        in the same step, first: a slot within the precise wait is waited for by the caller after
        START (:attr:`Start.wait_ms`); one farther ahead puts the job back to wake just before it,
        holding it, and starts nothing (``held``).
        """
        k = self.keys
        entry = pack_attempt({"started_at": now.isoformat(), **info})
        keys = [k.job(job_id), k.portal_halt(portal), k.portal_pause(portal), k.running, k.queue]
        keys += [k.scheduled(portal)]
        # one token per call: a START redis-py re-sends after a lost reply finds its own attempt
        token = secrets.token_hex(8)
        args: list[str | int | float] = [job_id, entry, int(lease_s * 1000), k.jobs.member(job_id), token]
        if slots is not None:
            bucket = slots.portal_bucket
            keys += [k.line_pacing(portal, slots.line) if slots.line else "", k.rate_bucket(portal)]
            args += [slots.line_interval_ms, bucket.interval_ms, bucket.tolerance_ms]
            args += [slots.line_lateness_ms, slots.portal_lateness_ms, int(PRECISE_WAIT_S * 1000)]
            args += [int(EARLY_WAKE_S * 1000), slots.deadline_ms]
        if not replicas:
            reply = await self.retry(lambda: self.scripts.start(keys=keys, args=args), where="start")
            return Start.parse(reply, token=token)

        async def build(pipe: Pipeline) -> None:
            await self.scripts.start(keys=keys, args=args, client=pipe)
            pipe.wait(replicas, max(int(replicas_timeout_s * 1000), 1))

        async def start_and_wait() -> tuple[Any, int]:
            reply, acked = await in_pipeline(self.redis, build, transaction=False)
            return reply, int(acked)

        reply, acked = await self.retry(start_and_wait, where="start")
        return replace(Start.parse(reply, token=token), replicated=acked >= replicas)

    async def portal_held_ms(self, portal: str) -> int:
        """How long ``portal`` stays halted or paused (ms; 0 when it is neither), in one round trip."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.pttl(self.keys.portal_halt(portal))
            pipe.pttl(self.keys.portal_pause(portal))
            halt_ms, pause_ms = await pipe.execute()
        return max(int(halt_ms), int(pause_ms), 0)

    async def finish_attempt(
        self, job_id: str, attempt: int, entry: dict[str, Any], *, job: CallbackJob | None = None
    ) -> bool:
        """Store how attempt ``attempt`` ended (time, HTTP status, error code and description), and
        with ``job`` and a ``duration_ms`` the request's latency in the dashboard's minute stats.

        The code and description are masked first (numbers, secrets; ``job``'s number exactly). One
        script (``attempt_entry.lua``) writes only if the record exists: False if it is gone.
        """
        value = pack_attempt(stored_attempt_entry(entry, job))
        duration_ms = entry.get("duration_ms")
        stats, latency, duration = "", "", 0
        if job is not None and isinstance(duration_ms, int | float):
            ended = entry.get("ended_at")
            ended_ms = (
                to_ms(datetime.fromisoformat(ended)) if isinstance(ended, str) else int(time.time() * 1000)
            )
            stats = self.keys.minute_stats(job.portal, minute_of(ended_ms))
            latency, duration = latency_field(duration_ms), int(duration_ms)
        keys = [self.keys.job(job_id), stats]
        args: list[str | int] = [f"attempt:{attempt}", value, latency, LATENCY_COUNT, LATENCY_SUM, duration]
        args.append(MINUTE_TTL_MS)
        written = await self.retry(
            lambda: self.scripts.attempt_entry(keys=keys, args=args), where="attempt entry"
        )
        return bool(written)

    async def reschedule(
        self,
        job_id: str,
        *,
        state: Status,
        run_at: datetime,
        expect: Collection[Status],
        fields: dict[str, str] | None = None,
        held_by: str | None = None,
        held_ttl_s: float = 0.0,
        orphan_seen_ms: int | None = None,
        owner: str = "",
    ) -> Rescheduled:
        """Put a job back to wait until ``run_at`` (step ``put_back``).

        The job's place in arq's queue is set here, in the same step (the arq job is told to retry
        without a delay of its own).

        Args:
            job_id: the job.
            state: the state it waits in (``scheduled`` or ``retrying``).
            run_at: when it runs again.
            expect: the states it may be put back from.
            fields: more record fields to set (the rate-limit slots held, a closed attempt entry).
            held_by: the portal whose halt or rate pause it waits out, so ``callq resume`` wakes it
                (if the halt was lifted since the job saw it, it runs now instead).
            held_ttl_s: how long that portal's held set is kept (a little over the halt).
            orphan_seen_ms: only if the job's attempt is orphaned (see :meth:`finalize`): ``busy``
                otherwise.
            owner: the lease token of the attempt whose worker puts it back (see :meth:`finalize`).
        """
        k = self.keys
        pairs = [item for pair in (fields or {}).items() for item in pair]
        held = [k.held(held_by), k.portal_halt(held_by), k.portal_pause(held_by)] if held_by else ["", "", ""]
        keys = [k.job(job_id), k.running, k.queue, "", *held]
        args: list[str | int] = [job_id, str(state), to_ms(run_at), _csv(expect), k.jobs.member(job_id)]
        args += ["", max(int(held_ttl_s * 1000), 1000)]
        args += [
            "" if orphan_seen_ms is None else orphan_seen_ms,
            STALE_MS,
            owner,
            k.scheduled_prefix,
            *pairs,
        ]
        reply = await self.retry(lambda: self.scripts.reschedule(keys=keys, args=args), where="reschedule")
        return Rescheduled.parse(reply)

    async def release_unstarted(self, job_ids: Sequence[str]) -> int:
        """Free the claim of jobs a lost worker instance held but never started.

        A job whose record still says scheduled or retrying sent nothing, so any worker may take it
        at once instead of after its claim's lease; a ``running`` one keeps its claim and goes the
        unknown-result way. Returns how many were released.
        """
        released = 0
        for job_id in job_ids:
            keys = [self.keys.job(job_id), self.keys.jobs.in_progress(job_id)]
            released += int(await self.scripts.release_unstarted(keys=keys, args=[]))
        return released

    async def defer(self, job_id: str, *, delay_s: float) -> bool:
        """Look at a job whose attempt is (or may be) in flight elsewhere again in ``delay_s``."""
        k = self.keys
        keys = [k.job(job_id), k.queue]
        return bool(await self.scripts.defer(keys=keys, args=[k.jobs.member(job_id), int(delay_s * 1000)]))

    async def heartbeat(
        self, job_ids: Sequence[str], *, worker_id: str, lease_s: float, liveness_s: float
    ) -> tuple[int, set[str]]:
        """Keep alive the leases of the attempts this worker runs, and its own liveness key.

        Returns:
            Redis's time (unix ms), and the job ids whose lease was renewed (an attempt that left
            the running index, judged orphaned or ended, is not renewed).
        """
        k = self.keys
        keys = [k.running, k.worker(worker_id)]
        reply = await self.scripts.heartbeat(
            keys=keys, args=[int(lease_s * 1000), int(liveness_s * 1000), *job_ids]
        )
        renewed = {job_id for job_id, flag in zip(job_ids, reply[1:], strict=True) if int(flag)}
        return int(reply[0]), renewed

    async def orphan_candidates(self, *, limit: int) -> tuple[int, list[str]]:
        """Jobs whose attempt lease lapsed, and the Redis time (unix ms) they were seen at."""
        reply = await self.scripts.orphans(keys=[self.keys.running], args=[limit])
        return int(reply[0]), [decode_text(job_id) for job_id in reply[1:]]

    async def forget_running(self, job_id: str) -> bool:
        """Drop ``job_id`` from the running index unless it is running (an entry left behind)."""
        keys = [self.keys.job(job_id), self.keys.running]
        return bool(await self.scripts.forget_running(keys=keys, args=[job_id]))

    async def resume(self, portal: str) -> tuple[bool, int]:
        """Lift a portal's halt and rate pause and wake the jobs put back to wait them out.

        Returns:
            (whether there was a halt or pause, how many jobs were woken).
        """
        k = self.keys
        keys = [k.portal_halt(portal), k.portal_pause(portal), k.held(portal), k.queue, k.scheduled(portal)]
        lifted, woken = await self.scripts.resume(keys=keys, args=[k.job(""), k.jobs.member("")])
        return int(lifted) > 0, int(woken)

    async def purge(self, job_ids: Sequence[str]) -> int:
        """Delete dead jobs for good (step ``purge``), each in one script with its idempotency key
        unless a replay took it over. Returns how many were deleted."""
        k = self.keys

        async def build(pipe: Pipeline) -> None:
            for job_id in job_ids:
                keys, args = [k.job(job_id), k.dead], [job_id, k.idempotency_prefix, k.dead_on_prefix]
                await self.scripts.purge(keys=keys, args=args, client=pipe)

        replies = await in_pipeline(self.redis, build, transaction=False)
        return sum(int(reply) for reply in replies)
