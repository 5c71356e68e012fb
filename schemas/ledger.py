"""The job record in Redis, shared by every producer and the worker.

A job lives in one hash, ``{p}:job:{id}``: its normalised JSON, its state, ``run_at`` while it
waits, an ``attempt:N`` entry per request made and, once final, its outcome. Every change of
state is one Lua script (:mod:`schemas.ledger_lua`), so a job is written final exactly once and
its outcome is appended to ``{p}:outcomes`` in the same step.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar, cast

from redis.asyncio import Redis

from schemas import ledger_lua
from schemas.bucket import EARLY_WAKE_S, PRECISE_WAIT_S, Bucket
from schemas.job import CallbackJob
from schemas.keys import ARQ_FUNCTION, Keys
from schemas.outcome import Outcome, Status
from schemas.records import JobRecord, decode_record, decode_text, from_ms, to_ms

__all__ = [  # with the names now in schemas.records, still importable from here
    "Admission",
    "FinalizeResult",
    "JobRecord",
    "Ledger",
    "Start",
    "arq_job_fields",
    "arq_payload",
    "from_ms",
    "to_ms",
]


def arq_payload(job_id: str, enqueue_ms: int) -> str:
    """The arq job of a callq job, written short: ``["<job id>",<enqueue ms>]``.

    arq's own encoding, ``{"t":null,"f":"callq.run_callback","a":["<id>"],"k":{},"et":<ms>}``, is
    twice as long and, over 44 bytes, can't be stored inline with its key's value object; every
    scheduled job has one (issue 7's memory target). :func:`arq_job_fields` expands it back.
    """
    return json.dumps([job_id, enqueue_ms], separators=(",", ":"))


def arq_job_fields(data: Any) -> Any:
    """arq's job fields (arq ``deserialize_job_raw``) from a decoded :func:`arq_payload`.

    Anything else (a job arq encoded itself) is returned unchanged.
    """
    if isinstance(data, list) and len(data) == 2:
        job_id, enqueue_ms = data
        return {"t": None, "f": ARQ_FUNCTION, "a": [job_id], "k": {}, "et": enqueue_ms}
    return data


T = TypeVar("T")


class WriteRetry(Protocol):
    """What to do with a write Redis refuses because it is full (``OutOfMemoryError``).

    The worker sends it again until Redis takes it (:meth:`worker.redis_full.WriteGate.until_written`):
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


@dataclass(frozen=True)
class Start:
    """What :meth:`Ledger.start_attempt` found.

    ``started``: this worker owns attempt ``attempt``; ``interrupted``: an earlier attempt was
    left running by a worker that died (its result is unknown); ``final``/``missing``: nothing to do.
    """

    verdict: Literal["started", "interrupted", "final", "missing", "halted"]
    attempt: int
    state: str | None = None
    halted_ms: int = 0


@dataclass(frozen=True)
class FinalizeResult:
    """``written`` when this call made the outcome; otherwise the state that prevented it."""

    written: bool
    state: str


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
                          k.arq_job(job.job_id), k.queue, k.plan_bucket(job.portal) if bucket else "",
                          k.portal_pause(job.portal)],
                    args=[job.job_id, job.to_json(), to_ms(r.run_at), arq_payload(job.job_id, to_ms(now)), ttl_ms,
                          k.arq_job_id(job.job_id), to_ms(now),
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
        return await self._run_finalize(outcome, claim="", idem=idem, allowed="new", job_json=job_json)

    async def finalize(
        self,
        outcome: Outcome,
        *,
        job: CallbackJob,
        allowed: str = "*",
        dedupe_window_s: float = 0,
        attempt: tuple[int, dict[str, Any]] | None = None,
    ) -> FinalizeResult:
        """Move a pending job to its final outcome, once.

        Args:
            outcome: the final outcome.
            job: the job, for its claim and idempotency keys.
            allowed: ``*`` from any pending state, or a comma list (cancel passes
                ``scheduled,retrying`` so a running job cannot be cancelled).
            dedupe_window_s: after success, how long the line + number stays claimed.
            attempt: (number, entry) of the attempt that ended the job, stored in the same step.
        """
        k = self.keys
        idem = k.idempotency(job.portal, job.idempotency_key) if job.idempotency_key else ""
        claim = k.claim(job.portal, job.from_line, job.to_number)
        # a success ends a run of rate refusals on the portal (the pause doubles only within one)
        strikes = k.portal_strikes(job.portal) if outcome.status == "succeeded" else ""
        return await self._run_finalize(
            outcome,
            claim=claim,
            idem=idem,
            allowed=allowed,
            dedupe_window_s=dedupe_window_s,
            attempt=attempt,
            strikes=strikes,
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
    ) -> FinalizeResult:
        k = self.keys
        now_ms = to_ms(datetime.fromisoformat(outcome.finished_at))
        field, entry = (
            (f"attempt:{attempt[0]}", json.dumps(attempt[1], separators=(",", ":"))) if attempt else ("", "")
        )
        keys = [
            k.job(outcome.job_id),
            claim,
            idem,
            k.outcomes,
            k.dead,
            k.arq_job(outcome.job_id),
            k.queue,
            strikes,
        ]
        args: list[str | int] = [outcome.job_id, str(outcome.status), outcome.to_json(), self.retention_ms]
        args += [self.outcomes_maxlen, int(dedupe_window_s * 1000), now_ms, k.arq_job_id(outcome.job_id)]
        args += [allowed, job_json, outcome.attempts, field, entry]
        verdict, state = await self.retry(lambda: self._finalize(keys=keys, args=args), where="finalize")
        return FinalizeResult(written=decode_text(verdict) == "written", state=decode_text(state))

    async def release_unstarted(self, job_ids: Sequence[str]) -> int:
        """Free arq's in-progress marker of jobs a lost worker instance held but never started.

        A job whose record still says scheduled or retrying sent nothing, so any worker may take it
        at once instead of after arq's in-progress timeout; a ``running`` one keeps its marker and
        goes the unknown-result way. Returns how many were released.
        """
        released = 0
        for job_id in job_ids:
            keys = [self.keys.job(job_id), self.keys.arq_in_progress(job_id)]
            released += int(await self._release(keys=keys, args=[]))
        return released

    async def start_attempt(self, job_id: str, *, portal: str, now: datetime, info: dict[str, Any]) -> Start:
        """Record that a request is about to be sent; the record says ``running`` until it ends.

        If the record already says ``running``, an earlier worker died mid-request: the verdict is
        ``interrupted`` and nothing is changed. If the portal is halted (credentials refused, manual
        block) or paused (rate refusal), the verdict is ``halted`` with ``halted_ms`` left, and
        nothing is changed.
        """
        entry = json.dumps({"started_at": now.isoformat(), **info}, separators=(",", ":"))
        keys = [self.keys.job(job_id), self.keys.portal_halt(portal), self.keys.portal_pause(portal)]
        verdict, value = await self.retry(
            lambda: self._start(keys=keys, args=[to_ms(now), entry]), where="start"
        )
        v = decode_text(verdict)
        if v == "halted":
            return Start(verdict="halted", attempt=0, halted_ms=int(decode_text(value)))
        if v in ("started", "interrupted"):
            return Start(verdict=v, attempt=int(decode_text(value)))  # type: ignore[arg-type]
        return Start(verdict=v, attempt=0, state=decode_text(value))  # type: ignore[arg-type]

    async def finish_attempt(self, job_id: str, attempt: int, entry: dict[str, Any]) -> None:
        """Store how attempt ``attempt`` ended (time, HTTP status, error code and description)."""
        key, value = self.keys.job(job_id), json.dumps(entry, separators=(",", ":"))
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
        field: tuple[str, str] | None = None,
    ) -> str:
        """Put a job back to wait until ``run_at`` (``ok``, or the state that prevented it)."""
        name, value = field or ("", "")
        args: list[str | int] = [str(state), to_ms(run_at), allowed, name, value]
        result = await self.retry(
            lambda: self._reschedule(keys=[self.keys.job(job_id)], args=args), where="reschedule"
        )
        return decode_text(result)

    async def read(self, job_id: str) -> JobRecord | None:
        """The record of ``job_id``, or None."""
        raw = await cast(Awaitable[dict[Any, Any]], self.redis.hgetall(self.keys.job(job_id)))
        return decode_record(job_id, raw)

    async def queued(self, *, start: int, count: int) -> list[JobRecord]:
        """Records of jobs in arq's queue (pending jobs), in order of ``run_at``, one page."""
        members = await self.redis.zrange(self.keys.queue, start, start + count - 1)
        ids = [self.keys.job_id_from_arq(decode_text(m)) for m in members]
        async with self.redis.pipeline(transaction=False) as pipe:
            for job_id in ids:
                pipe.hgetall(self.keys.job(job_id))
            raws = await pipe.execute()
        return [rec for job_id, raw in zip(ids, raws, strict=True) if (rec := decode_record(job_id, raw))]

    async def resolve(self, ident: str, *, portals: list[str]) -> str | None:
        """Turn a job id or an idempotency key (looked up on each portal) into a job id."""
        if await self.redis.exists(self.keys.job(ident)):
            return ident
        for portal in portals:
            holder = await self.redis.get(self.keys.idempotency(portal, ident))
            if holder is not None:
                return decode_text(holder)
        return None
