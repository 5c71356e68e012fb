"""The job record in Redis, shared by every producer and the worker.

A job lives in one hash, ``{p}:job:{id}``: its normalised JSON, its state, ``run_at`` while it
waits, an ``attempt:N`` entry per request made and, once final, its outcome. Every change of
state is one Lua script (:mod:`schemas.store.scripts`), so a job is written final exactly once and
its outcome is appended to ``{p}:outcomes`` in the same step.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar, cast

from redis.asyncio import Redis

from schemas.jobqueue.payload import stored_job
from schemas.policy.bucket import EARLY_WAKE_S, PRECISE_WAIT_S, Bucket
from schemas.store import scripts as ledger_lua
from schemas.store.keys import Keys
from schemas.store.records import JobRecord, decode_record, decode_text, from_ms, to_ms
from schemas.wire.job import CallbackJob
from schemas.wire.outcome import Outcome, Status, stored_attempt_entry, stored_outcome

__all__ = [  # with the names now in schemas.store.records, still importable from here
    "Admission",
    "FinalizeResult",
    "JobRecord",
    "Ledger",
    "Start",
    "from_ms",
    "to_ms",
]


T = TypeVar("T")


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
        take_key: a replay takes the idempotency key over from the dead job it replays.
    """

    job: CallbackJob
    run_at: datetime
    pending_ttl_s: float
    claim: bool = True
    bucket: Bucket | None = None
    take_key: bool = False


@dataclass(frozen=True)
class Admission:
    """What :meth:`Ledger.admit` did: made a new job, or found the job that already holds it."""

    verdict: Literal["new", "idempotent", "duplicate"]
    job_id: str  # the new job, or the holder of the idempotency key / line + number


STALE_MS = 2000
"""An orphan verdict is acted on only if Redis answered within this long since the lease was seen
lapsed: a command that waited out a stalled Redis may be overtaken by the owner's own writes."""


@dataclass(frozen=True)
class Start:
    """What :meth:`Ledger.start_attempt` found.

    ``started``: this worker owns attempt ``attempt`` (its lease is taken); ``busy``: an attempt is
    in flight and its worker keeps its lease alive (the queue entry was moved to when the lease
    would lapse); ``interrupted``: an attempt is in flight but its lease lapsed at ``seen_ms``
    (Redis time): nobody may be working on it any more, see :mod:`worker.jobs.orphans`;
    ``halted``: the portal is halted or paused for ``halted_ms``; ``final``/``missing``: nothing to do.
    """

    verdict: Literal["started", "busy", "interrupted", "final", "missing", "halted"]
    attempt: int
    state: str | None = None
    halted_ms: int = 0
    seen_ms: int = 0


@dataclass(frozen=True)
class FinalizeResult:
    """``written`` when this call made the outcome; otherwise the state that prevented it.

    ``busy``: the job was still pending but in a state not allowed, or (with an orphan guard) its
    attempt's lease is alive again.
    """

    written: bool
    state: str
    busy: bool = False


class Ledger:
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
        self.redis = redis
        self.retry = retry
        self.keys = keys
        self.retention_ms = int(retention_s * 1000)
        self.outcomes_maxlen = outcomes_maxlen
        self._admit = redis.register_script(ledger_lua.ADMIT)
        self._finalize = redis.register_script(ledger_lua.FINALIZE)
        self._start = redis.register_script(ledger_lua.START)
        self._reschedule = redis.register_script(ledger_lua.RESCHEDULE)
        self._release = redis.register_script(ledger_lua.RELEASE_UNSTARTED)
        self._defer = redis.register_script(ledger_lua.DEFER)
        self._heartbeat = redis.register_script(ledger_lua.HEARTBEAT)
        self._orphans = redis.register_script(ledger_lua.ORPHANS)
        self._forget_running = redis.register_script(ledger_lua.FORGET_RUNNING)
        self._resume = redis.register_script(ledger_lua.RESUME)

    async def admit(self, request: AdmitRequest, *, now: datetime) -> Admission:
        """Store a new job and schedule it, unless its idempotency key or line + number is taken."""
        (admission,) = await self.admit_many([request], now=now)
        return admission

    async def admit_many(self, requests: Sequence[AdmitRequest], *, now: datetime) -> list[Admission]:
        """Admit several jobs in one round trip (one ADMIT script each, pipelined, not a transaction:
        each job is still admitted atomically on its own)."""
        k = self.keys
        async with self.redis.pipeline(transaction=False) as pipe:
            for r in requests:
                job = r.job
                idem = k.idempotency(job.portal, job.idempotency_key) if job.idempotency_key else ""
                ttl_ms = max(int(r.pending_ttl_s * 1000), 1000)
                deadline = job.deadline_at
                bucket = r.bucket if r.run_at <= now else None
                await self._admit(
                    keys=[k.job(job.job_id), idem, k.claim(job.portal, job.from_line, job.to_number) if r.claim else "",
                          k.jobs.job(job.job_id), k.queue, k.plan_bucket(job.portal) if bucket else "",
                          k.portal_pause(job.portal)],
                    args=[job.job_id, job.to_json(), to_ms(r.run_at), stored_job(job.job_id, to_ms(now)), ttl_ms,
                          k.jobs.member(job.job_id), to_ms(now),
                          bucket.interval_ms if bucket else 0, bucket.tolerance_ms if bucket else 0,
                          int(PRECISE_WAIT_S * 1000), int(EARLY_WAKE_S * 1000),
                          to_ms(deadline) if deadline else to_ms(now) + ttl_ms, "1" if r.take_key else "0"],
                    client=pipe,
                )  # fmt: skip
            replies = await pipe.execute()
        return [
            Admission(verdict=decode_text(verdict), job_id=decode_text(holder))  # type: ignore[arg-type]
            for verdict, holder in replies
        ]

    async def record_final(
        self, outcome: Outcome, *, job: CallbackJob | None, idempotency_key: tuple[str, str] | None = None
    ) -> FinalizeResult:
        """Create a record that is final from the start (rejected, duplicate, expired on arrival).

        Args:
            outcome: the outcome to store and append.
            job: the job when it could be normalised, else None.
            idempotency_key: (portal, key) to point at this record, for a duplicate.
        """
        k = self.keys
        idem = k.idempotency(*idempotency_key) if idempotency_key else ""
        job_json = job.to_json() if job else "null"
        outcome = stored_outcome(outcome, job)
        return await self._run_finalize(outcome, claim="", idem=idem, allowed="new", job_json=job_json)

    async def finalize(
        self,
        outcome: Outcome,
        *,
        job: CallbackJob,
        allowed: str = "*",
        dedupe_window_s: float = 0,
        attempt: tuple[int, dict[str, Any]] | None = None,
        orphan_seen_ms: int | None = None,
    ) -> FinalizeResult:
        """Move a pending job to its final outcome, once.

        Args:
            outcome: the final outcome.
            job: the job, for its claim and idempotency keys.
            allowed: ``*`` from any pending state, or a comma list (cancel passes
                ``scheduled,retrying`` so a running job cannot be cancelled).
            dedupe_window_s: after success, how long the line + number stays claimed.
            attempt: (number, entry) of the attempt that ended the job, stored in the same step.
            orphan_seen_ms: only if the job's attempt is orphaned: its lease lapsed, seen at this
                Redis time (:mod:`worker.jobs.orphans`); otherwise nothing is written (``busy``).
        """
        k = self.keys
        idem = k.idempotency(job.portal, job.idempotency_key) if job.idempotency_key else ""
        claim = k.claim(job.portal, job.from_line, job.to_number)
        # a success ends a run of rate refusals on the portal (the pause doubles only within one)
        strikes = k.portal_strikes(job.portal) if outcome.status == "succeeded" else ""
        if attempt is not None:
            attempt = (attempt[0], stored_attempt_entry(attempt[1], job))
        return await self._run_finalize(
            stored_outcome(outcome, job),
            claim=claim,
            idem=idem,
            allowed=allowed,
            dedupe_window_s=dedupe_window_s,
            attempt=attempt,
            strikes=strikes,
            orphan_seen_ms=orphan_seen_ms,
        )

    async def _run_finalize(
        self,
        outcome: Outcome,
        *,
        claim: str,
        idem: str,
        allowed: str,
        job_json: str = "",
        dedupe_window_s: float = 0,
        attempt: tuple[int, dict[str, Any]] | None = None,
        strikes: str = "",
        orphan_seen_ms: int | None = None,
    ) -> FinalizeResult:
        k = self.keys
        now_ms = to_ms(datetime.fromisoformat(outcome.finished_at))
        field, entry = (
            (f"attempt:{attempt[0]}", json.dumps(attempt[1], separators=(",", ":"))) if attempt else ("", "")
        )
        # a cancelled job leaves arq's queue with it; so does an orphan (its arq run was given up)
        drop_arq = outcome.status == Status.CANCELLED or orphan_seen_ms is not None
        keys = [
            k.job(outcome.job_id),
            claim,
            idem,
            k.outcomes,
            k.dead,
            k.jobs.job(outcome.job_id),
            k.queue,
            strikes,
            k.running,
        ]
        args: list[str | int] = [outcome.job_id, str(outcome.status), outcome.to_json(), self.retention_ms]
        args += [self.outcomes_maxlen, int(dedupe_window_s * 1000), now_ms, k.jobs.member(outcome.job_id)]
        args += [allowed, job_json, outcome.attempts, field, entry, "1" if drop_arq else "0"]
        args += ["" if orphan_seen_ms is None else orphan_seen_ms, STALE_MS]
        verdict, state = await self.retry(lambda: self._finalize(keys=keys, args=args), where="finalize")
        v = decode_text(verdict)
        return FinalizeResult(written=v == "written", state=decode_text(state), busy=v == "busy")

    async def release_unstarted(self, job_ids: Sequence[str]) -> int:
        """Free arq's in-progress marker of jobs a lost worker instance held but never started.

        A job whose record still says scheduled or retrying sent nothing, so any worker may take it
        at once instead of after arq's in-progress timeout; a ``running`` one keeps its marker and
        goes the unknown-result way. Returns how many were released.
        """
        released = 0
        for job_id in job_ids:
            keys = [self.keys.job(job_id), self.keys.jobs.in_progress(job_id)]
            released += int(await self._release(keys=keys, args=[]))
        return released

    async def start_attempt(
        self, job_id: str, *, portal: str, now: datetime, info: dict[str, Any], lease_s: float
    ) -> Start:
        """Record that a request is about to be sent; the record says ``running`` until it ends.

        The attempt takes a lease of ``lease_s`` in ``{p}:running``, which the worker keeps alive
        (:meth:`heartbeat`) while it works on it. If the record already says ``running``, the verdict
        is ``busy`` while that lease lives and ``interrupted`` once it lapsed; nothing is changed.
        If the portal is halted (credentials refused, manual block) or paused (rate refusal), the
        verdict is ``halted`` with ``halted_ms`` left, and nothing is changed.
        """
        k = self.keys
        entry = json.dumps({"started_at": now.isoformat(), **info}, separators=(",", ":"))
        keys = [k.job(job_id), k.portal_halt(portal), k.portal_pause(portal), k.running, k.queue]
        # one token per call: a START redis-py re-sends after a lost reply finds its own attempt
        args: list[str | int] = [
            job_id,
            entry,
            int(lease_s * 1000),
            k.jobs.member(job_id),
            secrets.token_hex(8),
        ]
        reply = await self.retry(lambda: self._start(keys=keys, args=args), where="start")
        v, value = decode_text(reply[0]), decode_text(reply[1])
        if v == "halted":
            return Start(verdict="halted", attempt=0, halted_ms=int(value))
        if v == "started":
            return Start(verdict="started", attempt=int(value))
        if v in ("busy", "interrupted"):
            return Start(verdict=v, attempt=int(value), seen_ms=int(decode_text(reply[2])))  # type: ignore[arg-type]
        return Start(verdict=v, attempt=0, state=value)  # type: ignore[arg-type]

    async def finish_attempt(
        self, job_id: str, attempt: int, entry: dict[str, Any], *, job: CallbackJob | None = None
    ) -> None:
        """Store how attempt ``attempt`` ended (time, HTTP status, error code and description).

        The code and description are masked first (numbers, secrets; ``job``'s number exactly).
        """
        key = self.keys.job(job_id)
        value = json.dumps(stored_attempt_entry(entry, job), separators=(",", ":"))
        await self.retry(
            lambda: cast(Awaitable[int], self.redis.hset(key, f"attempt:{attempt}", value)),
            where="attempt entry",
        )

    async def reschedule(
        self,
        job_id: str,
        *,
        state: Status,
        run_at: datetime,
        allowed: str,
        fields: dict[str, str] | None = None,
        held_by: str | None = None,
        held_ttl_s: float = 0.0,
        orphan_seen_ms: int | None = None,
    ) -> str:
        """Put a job back to wait until ``run_at`` (``ok``, or the state that prevented it).

        The job's place in arq's queue is set here, in the same step (the arq job is told to retry
        without a delay of its own).

        Args:
            job_id: the job.
            state: the state it waits in (``scheduled`` or ``retrying``).
            run_at: when it runs again.
            allowed: the states it may be put back from (a comma list).
            fields: more record fields to set (the rate-limit slots held, a closed attempt entry).
            held_by: the portal whose halt or rate pause it waits out, so ``callq resume`` wakes it
                (if the halt was lifted since the job saw it, it runs now instead).
            held_ttl_s: how long that portal's held set is kept (a little over the halt).
            orphan_seen_ms: only if the job's attempt is orphaned (see :meth:`finalize`): ``busy``
                otherwise.
        """
        k = self.keys
        pairs = [item for pair in (fields or {}).items() for item in pair]
        held = [k.held(held_by), k.portal_halt(held_by), k.portal_pause(held_by)] if held_by else ["", "", ""]
        keys = [k.job(job_id), k.running, k.queue, k.jobs.job(job_id), *held]
        args: list[str | int] = [job_id, str(state), to_ms(run_at), allowed, k.jobs.member(job_id)]
        args += [stored_job(job_id, to_ms(run_at)), max(int(held_ttl_s * 1000), 1000)]
        args += ["" if orphan_seen_ms is None else orphan_seen_ms, STALE_MS, *pairs]
        result = await self.retry(lambda: self._reschedule(keys=keys, args=args), where="reschedule")
        return decode_text(result)

    async def defer(self, job_id: str, *, delay_s: float) -> bool:
        """Look at a job whose attempt is (or may be) in flight elsewhere again in ``delay_s``."""
        k = self.keys
        moved = await self._defer(
            keys=[k.job(job_id), k.queue], args=[k.jobs.member(job_id), int(delay_s * 1000)]
        )
        return bool(moved)

    async def heartbeat(
        self, job_ids: Sequence[str], *, worker_id: str, lease_s: float, liveness_s: float
    ) -> int:
        """Keep alive the leases of the attempts this worker runs, and its own liveness key.

        Returns:
            Redis's time (unix ms).
        """
        k = self.keys
        now_ms, _renewed = await self._heartbeat(
            keys=[k.running, k.worker(worker_id)],
            args=[int(lease_s * 1000), int(liveness_s * 1000), *job_ids],
        )
        return int(now_ms)

    async def orphan_candidates(self, *, limit: int) -> tuple[int, list[str]]:
        """Jobs whose attempt lease lapsed, and the Redis time (unix ms) they were seen at."""
        reply = await self._orphans(keys=[self.keys.running], args=[limit])
        return int(decode_text(reply[0])), [decode_text(job_id) for job_id in reply[1:]]

    async def forget_running(self, job_id: str) -> bool:
        """Drop ``job_id`` from the running index unless it is running (an entry left behind)."""
        removed = await self._forget_running(keys=[self.keys.job(job_id), self.keys.running], args=[job_id])
        return bool(removed)

    async def resume(self, portal: str) -> tuple[bool, int]:
        """Lift a portal's halt and rate pause and wake the jobs put back to wait them out.

        Returns:
            (whether there was a halt or pause, how many jobs were woken).
        """
        k = self.keys
        lifted, woken = await self._resume(
            keys=[k.portal_halt(portal), k.portal_pause(portal), k.held(portal), k.queue],
            args=[k.job(""), k.jobs.member("")],
        )
        return int(lifted) > 0, int(woken)

    async def read(self, job_id: str) -> JobRecord | None:
        """The record of ``job_id``, or None."""
        raw = await cast(Awaitable[dict[Any, Any]], self.redis.hgetall(self.keys.job(job_id)))
        return decode_record(job_id, raw)

    async def queued(self, *, start: int, count: int) -> list[JobRecord]:
        """Records of jobs in arq's queue (pending jobs), in order of ``run_at``, one page."""
        members = await self.redis.zrange(self.keys.queue, start, start + count - 1)
        ids = [self.keys.jobs.job_id(decode_text(m)) for m in members]
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.keys.job(job_id))
            raws = await pipe.execute()
        return [rec for job_id, raw in zip(ids, raws, strict=True) if (rec := decode_record(job_id, raw))]

    async def in_flight(self) -> list[JobRecord]:
        """Records of the jobs whose attempt is in flight (``{p}:running``), oldest lease first.

        A running job whose arq job was given up is in arq's queue no more; this finds it anyway.
        """
        ids = [decode_text(m) for m in await self.redis.zrange(self.keys.running, 0, -1)]
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.keys.job(job_id))
            raws = await pipe.execute()
        return [rec for job_id, raw in zip(ids, raws, strict=True) if (rec := decode_record(job_id, raw))]

    async def key_holders(self, key: str, *, portals: Sequence[str]) -> dict[str, str]:
        """The job holding idempotency key ``key`` on each of ``portals`` that has one (one round trip).

        A key is the same job only on the same portal, so a key may name a job on several portals:
        callers decide what several holders mean (an ambiguity, never the first match).
        """
        if not portals:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for portal in portals:
                pipe.get(self.keys.idempotency(portal, key))
            holders = await pipe.execute()
        return {
            portal: decode_text(holder)
            for portal, holder in zip(portals, holders, strict=True)
            if holder is not None
        }
