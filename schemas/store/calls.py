"""A succeeded job's call, followed to its end: the store's side of the follow-up (issue 14).

Every change is one script checked against the follow-up's machine (:data:`schemas.states.CALL_TRANSITIONS`):
``follow.lua`` (a call is out: await its end; sent in one MULTI with the success's FINALIZE, so that a
worker killed between the two cannot leave a success unfollowed), ``call_end.lua`` (a redial, or the
final call result with its entry on the outcome stream), ``redial_start.lua`` (a redial's attempt,
marked before its request), ``calls_due.lua`` and ``call_poll.lua`` (the pull schedule) and
``reserve_spare.lua`` (a follow-up's rate slot, at low priority).

:func:`settle_call_end` is the one path from a call's end, pushed or pulled, to its record: the
redial policy (:func:`schemas.policy.redial.decide_redial`) decides, a script writes.
"""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from schemas.policy.bucket import Bucket
from schemas.policy.call_result import MAX_CALL_DURATION_S, CallEnd, CallKind
from schemas.policy.redact import SHAPES, Redactor, known_secrets, mask_number, number_spellings, redact_text
from schemas.policy.redial import EndCall, EndReason, Redial, decide_redial
from schemas.states import CallState, CallStep
from schemas.store.compact import call_result_rest, pack_attempt
from schemas.store.keys import Keys
from schemas.store.ledger import WriteRetry, send_once
from schemas.store.records import JobRecord, decode_text, to_ms
from schemas.store.replies import CallVerdict, CallWrite, RedialStart
from schemas.store.scripts import Scripts
from schemas.store.stats import MINUTE_TTL_MS, call_stats_field, minute_of

if TYPE_CHECKING:
    from schemas.config import PortalConfig, Settings

INDEX_MARGIN_S = 86400.0
"""A CALL_ID's index outlives the follow-up horizon by a day: a late event still finds its job."""

PENDING_MARGIN_S = 3600.0
"""While a redial waits, its line + number claim lives until the deadline plus this margin."""

SPARE_SHARE = 0.5
"""A follow-up's statistics request takes a rate slot only while half the bucket stays free (see
:func:`spare_keep_ms`: a shallow bucket keeps less, so an idle bucket always lends one)."""


def spare_keep_ms(bucket: Bucket) -> float:
    """How much of ``bucket``'s tolerance a spare slot leaves to callbacks: half of it, but never more
    than the tolerance less one interval, so that a spare slot is free whenever the bucket is idle.

    A deep bucket keeps half (at least two callbacks still go at once after the spare slot); a
    bucket of depth 2 keeps one slot; a bucket of depth 1 (``burst`` 2, less callq's headroom) has
    nothing to keep, so its spare slot is taken only when the bucket is idle, and the next callback
    waits at most one interval. A bucket in use by callbacks (slots reserved ahead) lends none.
    """
    return min(bucket.tolerance_ms * SPARE_SHARE, bucket.tolerance_ms - bucket.interval_ms)


def _csv(states: Any) -> str:
    return ",".join(sorted(str(s) for s in states))


@dataclass(frozen=True)
class Due:
    """What :meth:`CallStore.due` found: jobs whose call to ask about now, redials whose lease lapsed."""

    now_ms: int
    awaiting: list[str]
    lapsed: list[str]


class CallStore:
    """The follow-up's scripts on one client.

    Args:
        redis: the client.
        keys: key names under the deployment prefix.
        retention_s: how long a record stays readable once its call result is final.
        outcomes_maxlen: approximate length cap of the outcome stream.
        retry: what to do when Redis refuses a write for being full.
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
        self.keys = keys
        self.retention_ms = int(retention_s * 1000)
        self.outcomes_maxlen = outcomes_maxlen
        self.retry = retry
        self.scripts = Scripts(redis)

    @classmethod
    def for_settings(cls, redis: Redis, settings: Settings, *, retry: WriteRetry = send_once) -> CallStore:
        """The deployment's call store."""
        return cls(
            redis,
            keys=Keys(settings.key_prefix),
            retention_s=settings.outcome_retention_s,
            outcomes_maxlen=settings.outcomes_maxlen,
            retry=retry,
        )

    def _follow_args(
        self,
        job_id: str,
        portal: PortalConfig,
        *,
        call_id: str,
        attempt: int,
        now: datetime,
        token: str = "",
        attempt_entry: str = "",
    ) -> tuple[list[str], list[str | int]]:
        k, timing = self.keys, portal.calls.timing
        keys = [k.job(job_id), k.call_index(portal.name, call_id), k.calls, k.dialling]
        args: list[str | int] = [job_id, call_id, attempt, to_ms(now), int(timing.first_poll_s * 1000)]
        args += [int((timing.horizon_s + INDEX_MARGIN_S) * 1000), token]
        args += [f"attempt:{attempt}" if attempt_entry else "", attempt_entry]
        return keys, args

    def follow_in(
        self, job_id: str, portal: PortalConfig, *, call_id: str, attempt: int, now: datetime
    ) -> Callable[[Pipeline], Awaitable[Any]]:
        """FOLLOW, to send in the same MULTI as the success's FINALIZE (``then`` of :meth:`Ledger.finalize`)."""
        keys, args = self._follow_args(job_id, portal, call_id=call_id, attempt=attempt, now=now)

        async def queue(pipe: Pipeline) -> Any:
            return await self.scripts.follow(keys=keys, args=args, client=pipe)

        return queue

    async def follow_redial(
        self,
        job_id: str,
        portal: PortalConfig,
        *,
        call_id: str,
        attempt: int,
        now: datetime,
        token: str,
        attempt_entry: dict[str, Any],
    ) -> CallWrite:
        """A redial was accepted: await the new call's end (``dialling`` → ``awaiting``)."""
        entry = pack_attempt(attempt_entry)
        keys, args = self._follow_args(
            job_id, portal, call_id=call_id, attempt=attempt, now=now, token=token, attempt_entry=entry
        )
        reply = await self.retry(lambda: self.scripts.follow(keys=keys, args=args), where="follow")
        return CallWrite.parse(reply)

    async def write_end(
        self,
        record: JobRecord,
        *,
        step: CallStep,
        now: datetime,
        call_id: str = "",
        result: dict[str, Any] | None = None,
        final: dict[str, Any] | None = None,
        run_at: datetime | None = None,
        claim_ttl_s: float = 0.0,
        expect: frozenset[CallState] = frozenset(),
        token: str = "",
    ) -> CallWrite:
        """Run ``call_end.lua``: ``redial`` (wait until ``run_at``) or ``call_end`` (``final``)."""
        k, job = self.keys, record.job
        index = k.call_index(job.portal, call_id) if call_id else ""
        keys = [k.job(job.job_id), index, k.calls, k.dialling, k.outcomes, k.queue, k.jobs.job(job.job_id)]
        keys.append(k.claim(job.portal, job.from_line, job.to_number))
        # the dashboard's last hour counts final call results by kind (the reached ratio)
        keys.append(k.minute_stats(job.portal, minute_of(to_ms(now))) if final else "")
        run_at_ms = to_ms(run_at) if run_at else 0
        args: list[str | int] = [job.job_id, str(step), call_id]
        args += [json.dumps(result, separators=(",", ":")) if result else ""]
        args += [json.dumps(final, separators=(",", ":")) if final else "", to_ms(now), run_at_ms]
        args += [k.jobs.member(job.job_id), ""]  # no arq job key: schemas.jobqueue.lane
        args += [
            max(int(claim_ttl_s * 1000), 0),
            self.outcomes_maxlen,
            _csv(expect),
            token,
            self.retention_ms,
            json.dumps(outcome_call(final), separators=(",", ":"), ensure_ascii=False) if final else "",
            call_stats_field(str(final.get("result", ""))) if final else "",
            MINUTE_TTL_MS,
            json.dumps(record.outcome, separators=(",", ":"), ensure_ascii=False)
            if final and record.outcome
            else "",
            _call_result_rest(record, final, result) or "",
        ]
        reply = await self.retry(lambda: self.scripts.call_end(keys=keys, args=args), where="call end")
        return CallWrite.parse(reply)

    async def redial_start(
        self, job_id: str, *, portal: str, now: datetime, info: dict[str, Any], lease_s: float, token: str
    ) -> RedialStart:
        """Mark a redial's attempt before its request is sent (``redial`` → ``dialling``)."""
        k = self.keys
        entry = pack_attempt({"started_at": now.isoformat(), "redial": True, **info})
        keys = [k.job(job_id), k.portal_halt(portal), k.portal_pause(portal), k.dialling]
        args: list[str | int] = [job_id, entry, int(lease_s * 1000), token]
        reply = await self.retry(
            lambda: self.scripts.redial_start(keys=keys, args=args), where="redial start"
        )
        return RedialStart.parse(reply)

    async def due(self, *, limit: int, claim_s: float) -> Due:
        """Jobs whose call's end to ask about now (each claimed for ``claim_s``), and lapsed redials."""
        keys = [self.keys.calls, self.keys.dialling]
        reply = await self.scripts.calls_due(keys=keys, args=[limit, int(claim_s * 1000)])
        ids = [decode_text(item) for item in reply[2:]]
        n = int(reply[1])
        return Due(now_ms=int(reply[0]), awaiting=ids[:n], lapsed=ids[n:])

    async def poll_later(self, job_id: str, *, call_id: str, at: datetime) -> bool:
        """No end yet: ask again at ``at``. False if the call is no longer awaited."""
        keys = [self.keys.job(job_id), self.keys.calls]
        return bool(await self.scripts.call_poll(keys=keys, args=[job_id, call_id, to_ms(at)]))

    async def reserve_spare(self, portal: str, bucket: Bucket) -> float:
        """A low-priority slot of the portal's bucket: 0 if taken now, else seconds to wait (none taken)."""
        keys = [self.keys.rate_bucket(portal), self.keys.portal_pause(portal)]
        keep_ms = math.floor(spare_keep_ms(bucket))  # down: never refuses an idle bucket by rounding
        args = [bucket.interval_ms, bucket.tolerance_ms, keep_ms]
        wait_ms = await self.retry(
            lambda: self.scripts.reserve_spare(keys=keys, args=args), where="spare slot"
        )
        return float(wait_ms) / 1000

    async def job_of(self, portal: str, call_id: str) -> str | None:
        """The job that placed ``call_id`` on ``portal`` (while its follow-up lasts)."""
        raw = await self.redis.get(self.keys.call_index(portal, call_id))
        return decode_text(raw) if raw is not None else None


def _call_result_rest(
    record: JobRecord, final: dict[str, Any] | None, result: dict[str, Any] | None
) -> str | None:
    """The record's compact form of ``final`` (:func:`schemas.store.compact.call_result_rest`), given
    the last call's entry it will hold: this call's ``result``, or the one it holds already."""
    if final is None:
        return None
    call = record.call
    last = result if result is not None else (call.results.get(call.attempt) if call else None)
    if last is None:
        return None
    # the entry as the record gives it back (JSON), as read_call_result will see it
    return call_result_rest(final, record.job, json.loads(json.dumps(last)))


OUTCOME_FIELDS = frozenset({"kind", "job_id", "portal", "from_line", "idempotency_key", "metadata"})
"""The call result's members the job's outcome already has: left out of the outcome's ``call``."""


def outcome_call(final: dict[str, Any]) -> dict[str, Any]:
    """The ``call`` object added to the job's outcome on the call result's stream entry: the final
    call result without what the outcome says already (the job, its portal, line, key, metadata)."""
    return {k: v for k, v in final.items() if k not in OUTCOME_FIELDS}


def call_result_entry(
    record: JobRecord,
    end: CallEnd,
    *,
    reason: EndReason,
    detail: str,
    now: datetime,
    redactor: Redactor = SHAPES,
) -> dict[str, Any]:
    """The final call result as published (the record's ``call_result``, the outcome stream's entry)."""
    job = record.job
    call = record.call
    results = dict(call.results) if call else {}
    results[call.attempt if call else record.attempts] = end.to_dict()
    return {
        "kind": "call_result",
        "job_id": job.job_id,
        "portal": job.portal,
        "from_line": job.from_line,
        "to_number": mask_number(job.to_number) if job.to_number else None,
        "idempotency_key": job.idempotency_key,
        "metadata": job.metadata,
        **_stored_end(end, job.to_number, redactor),
        "calls": len(results),
        "redials": call.redials if call else 0,
        "ended_by": str(reason),
        "detail": redact_text(detail, numbers=_spellings(job.to_number), redactor=redactor)[:300]
        if detail
        else None,
        "time_to_connect_s": time_to_connect_s(record, end, now=now),
        "finished_at": now.isoformat(),
    }


def time_to_connect_s(record: JobRecord, end: CallEnd, *, now: datetime) -> float | None:
    """From the job's arrival to the connected call's start (its end less its duration when the
    start is not given), redials included; None unless connected."""
    if not end.connected or record.created_at is None:
        return None
    started = now - timedelta(seconds=min(max(end.duration_s, 0), MAX_CALL_DURATION_S))
    if end.started_at:
        try:
            parsed = datetime.fromisoformat(end.started_at)
            started = parsed if parsed.tzinfo else started
        except ValueError:
            pass
    return round(max((started - record.created_at).total_seconds(), 0.0), 3)


def _spellings(number: str) -> tuple[str, ...]:
    return number_spellings(number) if number else ()


def _stored_end(end: CallEnd, number: str, redactor: Redactor = SHAPES) -> dict[str, Any]:
    """A call's end as stored: its reason (the portal's free text) masked: numbers by shape and this
    job's number in every spelling, and the configuration's secrets (``redactor``)."""
    stored = end.to_dict()
    if stored.get("reason"):
        stored["reason"] = redact_text(stored["reason"], numbers=_spellings(number), redactor=redactor)
    return stored


async def settle_call_end(
    store: CallStore,
    settings: Settings,
    record: JobRecord,
    end: CallEnd,
    *,
    now: datetime,
    expect: frozenset[CallState] = frozenset({CallState.AWAITING}),
    token: str = "",
) -> CallWrite:
    """Record a call's end: a redial if the line's policy says so, else the final call result.

    Args:
        store: the call store.
        settings: the configuration (the job's portal's redial policy and calendar).
        record: the job's record.
        end: the call's end (``kind`` unknown for a horizon passed or a redial lost).
        now: the current time.
        expect: the follow-up states it may be in (``awaiting``; ``dialling`` for a redial's end).
        token: the dialling redial's lease token, when its worker writes.

    Returns:
        What the script did (``written``; ``stale``/``busy``/``refused`` if another path was first).
    """
    job = record.job
    portal = settings.portals.get(job.portal)
    call = record.call
    redactor = Redactor(known_secrets(settings))
    stored = _stored_end(end, job.to_number, redactor)
    stored["placed_at"] = _placed_at(record)
    decision: Redial | EndCall
    if portal is None or call is None:
        decision = EndCall(EndReason.UNKNOWN if end.kind is CallKind.UNKNOWN else EndReason.NOT_REDIALLED)
    else:
        decision = decide_redial(
            portal.redial_for(job.from_line),
            end.kind,
            redials_done=call.redials,
            now=now,
            calendar=portal.calendar_for(job.from_line),
            not_before=job.not_before_at,
            deadline=job.deadline_at,
        )
    if isinstance(decision, Redial):
        pending_s = (
            (job.deadline_at - now).total_seconds() + PENDING_MARGIN_S
            if job.deadline_at
            else PENDING_MARGIN_S
        )
        written = await store.write_end(
            record,
            step=CallStep.REDIAL,
            now=now,
            call_id=end.call_id,
            result=stored,
            run_at=decision.at,
            claim_ttl_s=max(pending_s, 1.0),
            expect=expect,
            token=token,
        )
        if written.verdict is not CallVerdict.CLAIMED:
            return written
        decision = EndCall(EndReason.NOT_REDIALLED, f"the line and number are claimed by job {written.state}")
    final = call_result_entry(
        record, end, reason=decision.reason, detail=decision.detail, now=now, redactor=redactor
    )
    final["placed_at"] = stored["placed_at"]
    return await store.write_end(
        record,
        step=CallStep.CALL_END,
        now=now,
        call_id=end.call_id,
        result=stored,
        final=final,
        claim_ttl_s=portal.dedupe_window_s if portal else 0.0,
        expect=expect,
        token=token,
    )


async def cancel_redial(
    store: CallStore, settings: Settings, record: JobRecord, *, by: str, now: datetime
) -> CallWrite:
    """End a waiting redial for good (call step ``cancel``: ``redial`` → ``ended``): the final call
    result is the last call's end, ``ended_by: cancelled`` and ``detail`` naming who; its arq queue
    entry goes, the line + number claim is kept for the dedupe window like any final call result's,
    and the outcome stream gets the one ``call_result`` entry.

    Args:
        store: the call store.
        settings: the configuration (the portal's dedupe window, the secrets masked).
        record: the job's record (``succeeded``, its call in ``redial``).
        by: who cancels (a token's name, ``callq cancel``), said in ``detail``.
        now: the current time.

    Returns:
        ``written``; ``busy`` with the state if the follow-up is no longer waiting for its redial
        (``dialling``: its request may be out; ``ended``: over), ``refused`` if the job is not
        ``succeeded``.
    """
    job = record.job
    portal = settings.portals.get(job.portal)
    call = record.call
    last = (call.results.get(call.attempt) if call else None) or {}
    end = CallEnd(
        call_id=str(last.get("call_id") or (call.call_id if call else "") or ""),
        kind=_kind(last.get("result")),
        code=last.get("code"),
        reason=last.get("reason"),
        duration_s=int(last.get("duration_s") or 0),
        started_at=last.get("started_at"),
        source=str(last.get("source") or "pull"),
    )
    redactor = Redactor(known_secrets(settings))
    final = call_result_entry(
        record, end, reason=EndReason.CANCELLED, detail=f"cancelled by {by}", now=now, redactor=redactor
    )
    final["placed_at"] = last.get("placed_at") or _placed_at(record)
    return await store.write_end(
        record,
        step=CallStep.CANCEL,
        now=now,
        final=final,
        claim_ttl_s=portal.dedupe_window_s if portal else 0.0,
        expect=frozenset({CallState.REDIAL}),
    )


def _kind(value: Any) -> CallKind:
    try:
        return CallKind(str(value))
    except ValueError:
        return CallKind.UNKNOWN


def _placed_at(record: JobRecord) -> str | None:
    """When the followed call was placed (its attempt's start)."""
    call = record.call
    if call is None or not call.since_ms:
        return None
    return datetime.fromtimestamp(call.since_ms / 1000, tz=UTC).isoformat()
