"""A redial: a new attempt of a succeeded job whose call ended in a failure its line's policy redials.

:func:`worker.jobs.run.run_job` hands a job whose call waits for its redial here. Like any attempt it
runs inside business hours and before its deadline (else its call result is final: ``deadline``),
takes its line's pacing and its portal's rate slot (:func:`worker.jobs.pacing.take_slots`), and is
marked before its request is sent (``redial_start.lua``: ``dialling``, a lease in ``{p}:dialling``).
Accepted, the new call is followed (``awaiting``); refused before running (a rate refusal, a
halted portal), it waits and tries again; any other failure, or no answer, makes the call result
final (``redial_refused`` or ``unknown``): a redial is never sent twice.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from schemas.config import PortalConfig
from schemas.policy.calendar import Expired, earliest_run
from schemas.policy.call_result import CallEnd, CallKind
from schemas.policy.redact import Redactor, known_secrets
from schemas.policy.redial import EndReason
from schemas.states import CallState, CallStep
from schemas.store.calls import call_result_entry
from schemas.store.records import JobRecord
from schemas.store.replies import StartVerdict
from worker.bitrix.client import CallbackStarted
from worker.bitrix.errors import AuthRefused, AuthUnavailable, BitrixCallError
from worker.bitrix.oauth import send_with_refresh
from worker.bitrix.oauth_tokens import Credentials
from worker.calls.pull import count_call_end
from worker.jobs.deps import Deps
from worker.jobs.pacing import effective_bucket, take_slots
from worker.jobs.window import NotSent, send_in_window, window_end
from worker.policy.classify import Verdict, classify

log = structlog.get_logger("callq.calls")

EVENT_REDIAL = "call.redial"
EARLY_TOLERANCE = timedelta(milliseconds=500)
"""A redial woken this close to its time runs now rather than being put back for a blink."""

SEND_MARGIN_S = 5.0
"""A redial's request leaves only this long before its lease would lapse, at the latest."""


async def run_redial(deps: Deps, record: JobRecord, portal: PortalConfig) -> float | None:
    """Run one redial of ``record``'s job. Returns seconds until it runs again, or None."""
    assert deps.calls is not None and record.call is not None
    job, now = record.job, deps.clock()
    closed = await _closed(deps, record, portal, now=now, expect=CallState.REDIAL, early=EARLY_TOLERANCE)
    if closed is not None:
        return closed.delay
    hold = await take_slots(deps.limiter, record, portal, now=now) if deps.rate_limit else None
    if hold is not None:
        return await _back(deps, record, hold.wake, expect=CallState.REDIAL)
    if deps.rate_limit:
        # the slot's wait may have crossed the closing time or the deadline: nothing is marked yet
        closed = await _closed(deps, record, portal, now=deps.clock(), expect=CallState.REDIAL)
        if closed is not None:
            return closed.delay
    token = secrets.token_hex(8)
    lease_s = (deps.client_timeout.total or 30.0) + 2 * SEND_MARGIN_S
    taken = time.monotonic()
    start = await deps.calls.redial_start(
        job.job_id, portal=portal.name, now=deps.clock(), info={}, lease_s=lease_s, token=token
    )
    if start.verdict is StartVerdict.HALTED:
        return await _back(
            deps, record, now + timedelta(seconds=start.halted_ms / 1000 + 1), expect=CallState.REDIAL
        )
    if start.verdict is not StartVerdict.STARTED:
        return None  # in flight elsewhere, or ended meanwhile
    deps.metrics.redials.labels(portal=portal.name, line=job.from_line).inc()
    log.info(EVENT_REDIAL, job_id=job.job_id, attempt=start.attempt, redial=record.call.redials + 1)
    return await _dial(deps, record, portal, attempt=start.attempt, token=token, lease_s=lease_s, taken=taken)


async def _dial(
    deps: Deps,
    record: JobRecord,
    portal: PortalConfig,
    *,
    attempt: int,
    token: str,
    lease_s: float,
    taken: float,
) -> float | None:
    """Send the marked redial's request (``dialling``) and write what came of it."""
    assert deps.calls is not None
    job = record.job
    # the line's closing time or the job's deadline, whichever is first: looked up once, when marked
    closes = window_end(portal.calendar_for(job.from_line), job.deadline_at, now=deps.clock())

    async def send(creds: Credentials) -> CallbackStarted:
        budget = lease_s - SEND_MARGIN_S - (time.monotonic() - taken)
        if budget <= 0:
            raise BitrixCallError("not sent: the redial's lease could have lapsed")
        # and only while the line is open and the job not expired: a redirect or a token refresh
        # answered slowly since the redial was marked may have crossed the closing time
        return await send_in_window(
            deps.session,
            creds,
            job,
            closes=closes,
            now=deps.clock(),
            budget_s=budget,
            client_timeout=deps.client_timeout,
        )

    began = deps.clock()
    try:
        started = await send_with_refresh(
            deps.auth, portal, lambda creds: deps.addresses.send(portal, creds, send)
        )
    except NotSent as exc:
        # nothing was sent: the redial waits for the line's next opening (or ends: deadline)
        log.warning(exc.event, job_id=job.job_id, attempt=attempt, late_s=round(exc.late_s, 3))
        closed = await _closed(deps, record, portal, now=deps.clock(), token=token)
        if closed is not None:
            return closed.delay
        return await _back(deps, record, deps.clock() + timedelta(seconds=deps.retry_base_s), token=token)
    except (AuthRefused, AuthUnavailable):
        return await _back(deps, record, deps.clock() + timedelta(seconds=deps.pause_s), token=token)
    except BitrixCallError as error:
        return await _refused(deps, record, portal, error, token=token)
    if not started.call_id:
        return await _end(deps, record, EndReason.UNKNOWN, "the redial returned no CALL_ID", token=token)
    entry = {
        "started_at": began.isoformat(),
        "ended_at": deps.clock().isoformat(),
        "http_status": started.http_status,
        "call_id": started.call_id,
        "redial": True,
    }
    await deps.calls.follow_redial(
        job.job_id,
        portal,
        call_id=started.call_id,
        attempt=attempt,
        now=deps.clock(),
        token=token,
        attempt_entry=entry,
    )
    return None


@dataclass(frozen=True)
class _Settled:
    """The redial was put back or ended instead of being sent: what :func:`run_redial` returns."""

    delay: float | None


async def _closed(
    deps: Deps,
    record: JobRecord,
    portal: PortalConfig,
    *,
    now: datetime,
    expect: CallState = CallState.DIALLING,
    token: str = "",
    early: timedelta = timedelta(0),
) -> _Settled | None:
    """None while the line is open and the job's deadline not passed (or the line opens within
    ``early``); else the redial is put back until the line's next opening, or its call result is
    final (``deadline``)."""
    job = record.job
    decision = earliest_run(
        portal.calendar_for(job.from_line), now=now, not_before=job.not_before_at, deadline=job.deadline_at
    )
    if isinstance(decision, Expired):
        return _Settled(
            await _end(deps, record, EndReason.DEADLINE, decision.reason, expect=expect, token=token)
        )
    if decision.at > now + early:
        return _Settled(await _back(deps, record, decision.at, expect=expect, token=token))
    return None


async def _refused(
    deps: Deps, record: JobRecord, portal: PortalConfig, error: BitrixCallError, *, token: str
) -> float | None:
    """The redial's request failed: refused before it ran, it tries again later (the deadline bounds
    it); otherwise the call result is final (unknown when it may have run: never sent twice)."""
    failure = classify(error)
    if failure.verdict in (Verdict.RETRY, Verdict.PAUSE_PORTAL, Verdict.PAUSE_METHOD):
        if failure.verdict is Verdict.PAUSE_PORTAL:
            await deps.limiter.pause(portal.name, effective_bucket(portal))
        return await _back(deps, record, deps.clock() + timedelta(seconds=deps.retry_base_s), token=token)
    reason = EndReason.UNKNOWN if failure.verdict is Verdict.UNKNOWN else EndReason.REDIAL_REFUSED
    return await _end(deps, record, reason, failure.outcome_error()[1], token=token)


async def _back(
    deps: Deps, record: JobRecord, at: datetime, *, expect: CallState = CallState.DIALLING, token: str = ""
) -> float | None:
    """Put the redial back until ``at`` (``redial`` → ``redial``, or ``dialling`` → ``redial`` when
    its request was refused before running)."""
    assert deps.calls is not None
    job = record.job
    pending_s = (job.deadline_at - deps.clock()).total_seconds() + 3600 if job.deadline_at else 3600
    written = await deps.calls.write_end(
        record,
        step=CallStep.REDIAL,
        now=deps.clock(),
        run_at=at,
        claim_ttl_s=max(pending_s, 1.0),
        expect=frozenset({expect}),
        token=token,
    )
    return max((at - deps.clock()).total_seconds(), 0.0) if written.done else None


async def _end(
    deps: Deps,
    record: JobRecord,
    reason: EndReason,
    detail: str,
    *,
    expect: CallState = CallState.DIALLING,
    token: str = "",
) -> float | None:
    """The call result is final: the last call's end (or ``unknown``), and why no redial follows."""
    assert deps.calls is not None and record.call is not None
    now = deps.clock()
    last = record.call.results.get(record.call.attempt, {})
    kind = CallKind.UNKNOWN if reason is EndReason.UNKNOWN else CallKind(last.get("result", "unknown"))
    end = CallEnd(
        call_id=record.call.call_id or "",
        kind=kind,
        code=last.get("code"),
        reason=last.get("reason"),
        duration_s=int(last.get("duration_s", 0)),
        started_at=last.get("started_at"),
        source=str(last.get("source", "redial")),
    )
    redactor = Redactor(known_secrets(deps.settings))
    final = call_result_entry(record, end, reason=reason, detail=detail, now=now, redactor=redactor)
    portal = deps.settings.portals.get(record.job.portal)
    written = await deps.calls.write_end(
        record,
        step=CallStep.CALL_END,
        now=now,
        final=final,
        claim_ttl_s=portal.dedupe_window_s if portal else 0.0,
        expect=frozenset({expect}),
        token=token,
    )
    if written.done:
        count_call_end(deps, record, end, ended=True, now=now)
    return None
