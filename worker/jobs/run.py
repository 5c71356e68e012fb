"""Runs one callback job: decide, take a slot, record the attempt, call Bitrix24, record the end.

Pure policies decide (:mod:`schemas.policy.calendar`, :mod:`worker.policy.classify`, :mod:`worker.policy.backoff`);
this module only reads the record, asks them and writes what they said. It returns how long to
wait before the job runs again, or None when there is nothing more to do; the arq glue in
:mod:`worker.service.app` turns a delay into ``Retry``. A failed attempt is acted on in
:mod:`worker.jobs.failures`; every path ends through :mod:`worker.jobs.settle` (final outcome or put back).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import structlog
from redis.asyncio.client import Pipeline
from redis.exceptions import ResponseError

from schemas.config import PortalConfig
from schemas.policy.calendar import Expired, earliest_run
from schemas.policy.log_redaction import bind_job_number
from schemas.states import FINAL_STATUSES, CallState, Status
from schemas.store.ledger import SlotRequest
from schemas.store.records import JobRecord, from_ms, to_ms
from schemas.store.replies import Start, StartVerdict
from schemas.store.writegate import refusal_or_raise
from schemas.wire.codes import ErrorCode
from worker.bitrix.client import CallbackStarted
from worker.bitrix.errors import AuthRefused, AuthUnavailable, BitrixCallError, TransportError
from worker.bitrix.oauth import send_with_refresh
from worker.bitrix.oauth_tokens import Credentials
from worker.calls.redial import run_redial
from worker.jobs.deps import Deps
from worker.jobs.failures import auth_error, handle_failure, handle_interrupted, handle_unknown
from worker.jobs.operating import kept_reading, note_operating
from worker.jobs.pacing import LINE_LATENESS_MS, effective_bucket, usable_lateness_ms
from worker.jobs.settle import defer_busy, durably, end_job, put_back, retry_at
from worker.jobs.window import LeaseRanOut, NotSent, SlotLapsed, send_in_window, window_end
from worker.policy.classify import Failure, Verdict, classify

log = structlog.get_logger("callq.worker")

EVENT_RESULT_UNWRITTEN = "job.result_unwritten"
RESULT_UNWRITTEN_HINT = (
    "the worker stopped after sending this job's request and before recording its result; the "
    "reconciler ends it OUTCOME_UNKNOWN once its lease lapses: check the portal's call history before "
    "replaying it"
)

EVENT_START_UNREPLICATED = "job.start_unreplicated"
START_UNREPLICATED = "not sent: too few Redis replicas acknowledged the attempt's start in time"

EARLY_TOLERANCE = timedelta(milliseconds=500)
"""A job woken this close to its time runs now rather than being put back for a blink."""


async def run_job(deps: Deps, job_id: str) -> float | None:
    """Run one job. Returns seconds until it should run again (already put back in the queue at its
    time), or None when done."""
    record = await deps.ledger.read(job_id, run_at=False)
    if record is None:
        log.warning("job.missing", job_id=job_id)
        return None
    if record.state in FINAL_STATUSES and not _waits_for_redial(record):
        return None
    job = record.job
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(job_id=job_id, portal=job.portal, line=job.from_line)
    bind_job_number(job.to_number)  # masked in every line of this run, whatever text echoes it
    portal = deps.settings.portals.get(job.portal)
    if portal is None:
        return await end_job(
            deps, record, Status.DEAD, error=(ErrorCode.PORTAL_NOT_CONFIGURED, f"no portal {job.portal!r}")
        )
    if _waits_for_redial(record):
        return await run_redial(deps, record, portal)
    now = deps.clock()
    if record.state == Status.RUNNING:
        # an attempt in flight: its worker's, while its lease lives; else perhaps nobody's
        start = await deps.ledger.start_attempt(
            job_id, portal=portal.name, now=now, info={}, lease_s=deps.leases.timing.lease_s
        )
        return await _not_started(deps, record, portal, start, now=now)
    ready = await _ready_to_start(deps, record, portal, now=now)
    if not isinstance(ready, datetime):
        return ready.delay
    now = ready
    spent = _spent_attempts(record)
    taken_at = deps.leases.clock()  # before START: the lease is counted from no earlier than this
    start = await deps.ledger.start_attempt(
        job_id,
        portal=portal.name,
        now=now,
        info={"spent_before": spent},
        lease_s=deps.leases.timing.lease_s,
        replicas=deps.settings.start_replicas,
        replicas_timeout_s=deps.settings.start_replicas_timeout_s,
        slots=slot_request(record, portal) if deps.rate_limit else None,
    )
    if start.verdict is StartVerdict.HELD:
        # a slot too far ahead: START put the job back to wake just before it, holding it
        deps.metrics.rate_limit_waits.labels(portal=portal.name).inc()
        log.info("job.deferred", state=str(record.state), run_at=from_ms(start.wake_ms).isoformat())
        return max((start.wake_ms - to_ms(now)) / 1000, 0.0)
    if start.verdict is not StartVerdict.STARTED:
        return await _not_started(deps, record, portal, start, now=now)
    deps = replace(deps, attempt_token=start.token)  # its end is written only while it is the attempt
    if not start.replicated:
        # a failover now could lose the record that this request went out: do not send it
        return await _unreplicated(deps, record, attempt=start.attempt, started_at=now)
    with deps.leases.holding(job_id, taken_at=taken_at):
        try:
            slot_at = deps.clock() + timedelta(milliseconds=start.wait_ms)
            sent = await _still_sendable(deps, record, portal, start, now=now)
            if not isinstance(sent, datetime):
                return sent.delay
            now = sent
            return await _attempt(
                deps, record, portal, attempt=start.attempt, spent=spent, started_at=now, slot_at=slot_at
            )
        except asyncio.CancelledError:
            # an immediate stop, or a graceful one that ran out of time while Redis was away
            log.error(EVENT_RESULT_UNWRITTEN, attempt=start.attempt, hint=RESULT_UNWRITTEN_HINT)
            raise


def _waits_for_redial(record: JobRecord) -> bool:
    """A succeeded job whose call ended unanswered, waiting in the queue for its redial (issue 14)."""
    return (
        record.state == Status.SUCCEEDED and record.call is not None and record.call.state == CallState.REDIAL
    )


async def _still_sendable(
    deps: Deps, record: JobRecord, portal: PortalConfig, start: Start, *, now: datetime
) -> datetime | _Settled:
    """After START: wait for the slots it took, then look at the calendar again (the wait may cross a
    closing time or the deadline) and at the portal's pause.

    Without a wait nothing is looked at again here: the calendar was looked at just before START, and
    each send checks the window (:func:`worker.jobs.window.check_window`), so a closing crossed in
    the milliseconds of START still sends nothing. One calendar decision less per job.

    Returns the instant the request is sent at, or how the job was put back instead (not sent).
    """
    if start.wait_ms <= 0:
        return deps.clock()
    await asyncio.sleep(start.wait_ms / 1000)
    now = deps.clock()
    closed = _closed_at(record, portal, now=now)
    if closed is not None:
        return _Settled(await _closed_before_send(deps, record, closed, attempt=start.attempt, now=now))
    # a rate refusal meanwhile pauses the portal: not even a slot taken before it is used
    held_ms = await deps.ledger.portal_held_ms(portal.name)
    if held_ms > 0:
        return _Settled(await _paused_before_send(deps, record, portal, held_ms, attempt=start.attempt))
    return now


async def _paused_before_send(
    deps: Deps, record: JobRecord, portal: PortalConfig, held_ms: int, *, attempt: int
) -> float | None:
    """The portal was halted or paused during the slot's wait after START: nothing is sent; the
    attempt is recorded as not sent and the job waits the pause out (``callq resume`` wakes it)."""
    error = TransportError(phase="connect", description="not sent: the portal was paused before the slot")
    failure = Failure(Verdict.PAUSE_PORTAL, error)
    entry = _attempt_entry(deps, time.monotonic(), deps.clock(), failure=failure)
    held_s = held_ms / 1000

    async def put_off() -> float | None:
        await deps.ledger.finish_attempt(record.job_id, attempt, entry)
        now = deps.clock()
        wake = now + timedelta(seconds=held_s + 2 * deps.jitter())
        return await retry_at(
            deps, record, wake, now=now, failure=failure, attempts=attempt, held_by=portal.name, held_s=held_s
        )

    return await durably("not_sent", put_off)


def slot_request(record: JobRecord, portal: PortalConfig) -> SlotRequest:
    """The rate-limit slots the job's START takes (:mod:`worker.jobs.pacing`'s rules)."""
    job = record.job
    bucket = effective_bucket(portal)
    min_interval_s = portal.line(job.from_line).min_interval_s
    deadline = job.deadline_at
    return SlotRequest(
        portal_bucket=bucket,
        line=job.from_line if min_interval_s > 0 else None,
        line_interval_ms=min_interval_s * 1000,
        line_lateness_ms=LINE_LATENESS_MS,
        portal_lateness_ms=usable_lateness_ms(bucket),
        deadline_ms=to_ms(deadline) if deadline else 0,
    )


def _closed_at(record: JobRecord, portal: PortalConfig, *, now: datetime) -> Expired | datetime | None:
    """None if the job may be sent now; else when it may (or that it cannot before its deadline)."""
    job = record.job
    calendar = portal.calendar_for(job.from_line)
    decision = earliest_run(calendar, now=now, not_before=job.not_before_at, deadline=job.deadline_at)
    if isinstance(decision, Expired):
        return decision
    return decision.at if decision.at > now else None


async def _closed_before_send(
    deps: Deps, record: JobRecord, closed: Expired | datetime, *, attempt: int, now: datetime
) -> float | None:
    """The line closed (or the deadline came) during the slot's wait after START: nothing is sent;
    the attempt is recorded as not sent and the job waits for the next opening, or expires."""
    reason = closed.reason if isinstance(closed, Expired) else "the line closed before the slot"
    error = TransportError(phase="connect", description=f"not sent: {reason}")
    entry = _attempt_entry(deps, time.monotonic(), now, failure=Failure(Verdict.PAUSE_PORTAL, error))
    wake = closed.next_opening or now if isinstance(closed, Expired) else closed
    wait_s = max((wake - now).total_seconds(), 0.0)
    return await durably(
        "not_sent", lambda: _not_sent(deps, record, error, attempt=attempt, entry=entry, wait_s=wait_s)
    )


@dataclass(frozen=True)
class _Settled:
    """The job was put back or ended before its attempt: what :func:`run_job` returns."""

    delay: float | None


async def _ready_to_start(
    deps: Deps, record: JobRecord, portal: PortalConfig, *, now: datetime
) -> datetime | _Settled:
    """Business hours and the deadline, as the job wakes.

    Returns the instant the attempt starts at, or how the job was put back or ended instead. A job
    woken a blink early waits for its time here rather than start early. The rate limit's slots
    are taken by START itself (:func:`slot_request`).
    """
    job = record.job
    calendar = portal.calendar_for(job.from_line)
    decision = earliest_run(calendar, now=now, not_before=job.not_before_at, deadline=job.deadline_at)
    if isinstance(decision, Expired):
        error = (ErrorCode.DEADLINE_PASSED, decision.reason)
        return _Settled(await end_job(deps, record, Status.EXPIRED, error=error))
    early = decision.at - now
    if early > EARLY_TOLERANCE:
        return _Settled(await put_back(deps, record, state=record.state, run_at=decision.at, now=now))
    if early > timedelta(0):
        await asyncio.sleep(early.total_seconds())
        now = deps.clock()
    return now


async def _not_started(
    deps: Deps, record: JobRecord, portal: PortalConfig, start: Start, *, now: datetime
) -> float | None:
    """What a START that did not start an attempt leads to."""
    if start.verdict is StartVerdict.HALTED:
        # credentials refused or a manual block: wait for the halt (spread out, so one job probes
        # first); `callq resume` wakes it at once
        halt_s = start.halted_ms / 1000
        wake = now + timedelta(seconds=halt_s + 2 * deps.jitter())
        return await put_back(
            deps, record, state=record.state, run_at=wake, now=now, held_by=portal.name, held_s=halt_s
        )
    if start.verdict is StartVerdict.BUSY:
        return deps.leases.timing.lease_s  # START moved it to when the lease would lapse
    if start.verdict is StartVerdict.INTERRUPTED:
        if not deps.leases.may_judge():
            # this process's Redis was away: give the attempt's owner time to renew its lease first
            return await defer_busy(deps, record.job_id)
        return await handle_interrupted(deps, record, portal, attempt=start.attempt, seen_ms=start.seen_ms)
    return None  # cancelled or finished elsewhere in the meantime


async def _attempt(
    deps: Deps,
    record: JobRecord,
    portal: PortalConfig,
    *,
    attempt: int,
    spent: int,
    started_at: datetime,
    slot_at: datetime | None = None,
) -> float | None:
    job = record.job
    began = time.monotonic()
    latency = deps.metrics.bitrix_request_seconds.labels(
        portal=portal.name, method="voximplant.callback.start"
    )

    # the line's closing time or the job's deadline, whichever is first: looked up once, at START
    closes = window_end(portal.calendar_for(job.from_line), job.deadline_at, now=started_at)
    # the portal's rate slot START took: the first request may leave this late at the most (a worker
    # frozen or starved since would bunch it with the next job's, on time: an over-limit refusal)
    slot_late_s = _slot_lateness_s(portal) if deps.rate_limit else None
    sends = 0

    async def send(creds: Credentials) -> CallbackStarted:
        nonlocal sends
        sends += 1
        if sends == 1 and slot_at is not None and slot_late_s is not None:
            late_s = (deps.clock() - slot_at).total_seconds() - slot_late_s
            if late_s > 0:
                raise SlotLapsed(late_s=late_s)
        # only while this attempt's lease surely lives: a process frozen or cut off from Redis since
        # START may have had its attempt judged orphaned (and replayed) by now
        budget = deps.leases.send_budget(record.job_id)
        if budget <= 0:
            raise LeaseRanOut(late_s=-budget)
        # and only while the line is open and the job not expired: a redirect or a token refresh
        # answered slowly since START may have crossed the closing time (each send looks again)
        return await send_in_window(
            deps.session,
            creds,
            job,
            closes=closes,
            now=deps.clock(),
            budget_s=budget,
            client_timeout=deps.client_timeout,
        )

    failure: Failure | None = None
    try:
        # an OAuth token that expired is refreshed once for all workers and the request repeated, and
        # a portal that moved is asked again at its new address: Bitrix24 refuses an expired token,
        # and redirects, before running the method, so neither can ring twice
        started = await send_with_refresh(
            deps.auth, portal, lambda creds: deps.addresses.send(portal, creds, send)
        )
    except (AuthRefused, AuthUnavailable) as exc:
        # the refresh failed: nothing was sent
        failure = classify(auth_error(exc))
    except ResponseError as exc:
        # Redis refused a write of the OAuth refresh (its lock) before anything was sent: not spent
        refusal = refusal_or_raise(exc)
        deps.gate.refused("oauth refresh", refusal)
        not_sent = TransportError(
            phase="connect", description=f"not sent: Redis refuses writes ({refusal}; OAuth token refresh)"
        )
        entry = _attempt_entry(deps, began, started_at, failure=Failure(Verdict.PAUSE_PORTAL, not_sent))
        return await durably(
            "not_sent",
            lambda: _not_sent(
                deps, record, not_sent, attempt=attempt, entry=entry, wait_s=max(deps.gate.wait_s(), 1.0)
            ),
        )
    except NotSent as exc:
        # nothing was sent; the reconciler may have judged the attempt already (then this put-back
        # finds the record moved on, and nothing more happens here)
        log.warning(exc.event, attempt=attempt, late_s=round(exc.late_s, 3))
        ran_out: NotSent = exc
        entry = _attempt_entry(deps, began, started_at, failure=Failure(Verdict.PAUSE_PORTAL, ran_out))
        return await durably(
            "not_sent", lambda: _not_sent(deps, record, ran_out, attempt=attempt, entry=entry, wait_s=0.0)
        )
    except BitrixCallError as error:
        latency.observe(time.monotonic() - began)
        failure = classify(error)
        deps.metrics.attempts.labels(portal=portal.name, result=str(failure.verdict)).inc()
    except Exception as exc:
        # A bug after the attempt was recorded: the request may have gone out.
        log.exception("job.attempt_crashed")
        lost = Failure(Verdict.UNKNOWN, BitrixCallError(f"{type(exc).__name__} during the request"))
        return await durably("crash", lambda: handle_unknown(deps, record, portal, lost, attempt=attempt))
    if failure is not None:
        entry = _attempt_entry(deps, began, started_at, failure=failure)
        spent_now = spent + 1 if failure.spends_attempt else spent
        return await durably(
            "failure",
            lambda: _failed(deps, record, portal, failure, attempt=attempt, spent=spent_now, entry=entry),
        )
    latency.observe(time.monotonic() - began)
    deps.metrics.attempts.labels(portal=portal.name, result="success").inc()
    entry = _attempt_entry(deps, began, started_at, started=started)
    again = await durably(
        "success",
        lambda: end_job(
            deps,
            record,
            Status.SUCCEEDED,
            attempts=attempt,
            call_id=started.call_id,
            dedupe_window_s=portal.dedupe_window_s,
            attempt_entry=(attempt, entry),
            then=_follow_up(deps, record, portal, call_id=started.call_id, attempt=attempt),
            reading=kept_reading(portal, started.operating),
        ),
    )
    # after the outcome is safe: the budget of the method's execution time, for every worker (the
    # reading was kept by the same step; a pause is a step of its own, and rare)
    await durably(
        "operating",
        lambda: note_operating(
            deps.limiter, portal, started.operating, now_s=deps.clock().timestamp(), kept=True
        ),
    )
    return again


def _follow_up(
    deps: Deps, record: JobRecord, portal: PortalConfig, *, call_id: str | None, attempt: int
) -> Callable[[Pipeline], Awaitable[Any]] | None:
    """The success's call follow-up, written in the same MULTI as its outcome (issue 14)."""
    if deps.calls is None or not call_id or not portal.calls.follow:
        return None
    return deps.calls.follow_in(record.job_id, portal, call_id=call_id, attempt=attempt, now=deps.clock())


async def _unreplicated(deps: Deps, record: JobRecord, *, attempt: int, started_at: datetime) -> float | None:
    """The attempt's START did not reach ``start_replicas`` replicas in time: nothing is sent, and
    the job tries again after a short wait (not spent)."""
    wanted = deps.settings.start_replicas
    log.warning(EVENT_START_UNREPLICATED, attempt=attempt, replicas=wanted)
    error = TransportError(phase="connect", description=f"{START_UNREPLICATED} ({wanted} asked for)")
    entry = _attempt_entry(deps, time.monotonic(), started_at, failure=Failure(Verdict.PAUSE_PORTAL, error))
    wait_s = max(deps.settings.start_replicas_timeout_s, 1.0)
    return await durably(
        "not_sent", lambda: _not_sent(deps, record, error, attempt=attempt, entry=entry, wait_s=wait_s)
    )


async def _not_sent(
    deps: Deps,
    record: JobRecord,
    error: BitrixCallError,
    *,
    attempt: int,
    entry: dict[str, Any],
    wait_s: float,
) -> float | None:
    """Record an attempt whose request was never sent (not spent), and try again in ``wait_s``."""
    await deps.ledger.finish_attempt(record.job_id, attempt, entry)
    now = deps.clock()
    wake = now + timedelta(seconds=wait_s)
    failure = Failure(Verdict.PAUSE_PORTAL, error)
    return await retry_at(deps, record, wake, now=now, failure=failure, attempts=attempt)


async def _failed(
    deps: Deps,
    record: JobRecord,
    portal: PortalConfig,
    failure: Failure,
    *,
    attempt: int,
    spent: int,
    entry: dict[str, Any],
) -> float | None:
    """Record how a failed attempt ended, then act on its classification."""
    await deps.ledger.finish_attempt(record.job_id, attempt, entry, job=record.job)
    return await handle_failure(deps, record, portal, failure, attempt=attempt, spent=spent)


SLOT_LATENESS_FLOOR_S = 0.1
"""A request may leave this late after its slot whatever the bucket (a fast bucket's half interval is
a fraction of a millisecond, less than an event loop's hiccup)."""


def _slot_lateness_s(portal: PortalConfig) -> float:
    """How late after its portal slot a request may still leave: the slot's usable lateness, one
    interval of the bucket (the one request of headroom it keeps), and at least a tenth of a second."""
    bucket = effective_bucket(portal)
    return max(usable_lateness_ms(bucket), bucket.interval_ms, SLOT_LATENESS_FLOOR_S * 1000) / 1000


def _spent_attempts(record: JobRecord) -> int:
    """Attempts that count against ``max_attempts``: not the ones the portal's rate limit refused."""
    return sum(1 for entry in record.attempt_log if entry.get("counts", True))


def _attempt_entry(
    deps: Deps,
    began: float,
    started_at: datetime,
    *,
    started: CallbackStarted | None = None,
    failure: Failure | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "started_at": started_at.isoformat(),
        "ended_at": deps.clock().isoformat(),
        "duration_ms": round((time.monotonic() - began) * 1000),
    }
    if started is not None:
        entry.update(http_status=started.http_status, call_id=started.call_id)
    if failure is not None:
        error = failure.error
        entry.update(
            http_status=error.http_status,
            code=error.code,
            description=error.description[:500],
            verdict=str(failure.verdict),
        )
        if not failure.spends_attempt:
            entry["counts"] = False
    return entry
