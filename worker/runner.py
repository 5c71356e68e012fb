"""Runs one callback job: decide, take a slot, record the attempt, call Bitrix24, record the end.

Pure policies decide (:mod:`schemas.calendar`, :mod:`worker.classify`, :mod:`worker.backoff`);
this module only reads the record, asks them and writes what they said. It returns how long to
wait before the job runs again, or None when there is nothing more to do; the arq glue in
:mod:`worker.app` turns a delay into ``Retry``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

import structlog

from schemas.calendar import Expired, earliest_run
from schemas.config import PortalConfig
from schemas.job import CallbackJob
from schemas.ledger import JobRecord
from schemas.outcome import FINAL_STATUSES, ErrorCode, OutcomeError, Status, outcome_for
from worker.auth import AuthRefused, AuthUnavailable, Credentials, send_with_refresh
from worker.backoff import backoff_delay_s
from worker.bitrix import CallbackStarted, start_callback
from worker.classify import Verdict, classify, is_recognised
from worker.deps import Deps
from worker.errors import BitrixApiError, BitrixCallError, BitrixHttpError
from worker.pacing import effective_bucket, take_slots

log = structlog.get_logger("callq.worker")

EARLY_TOLERANCE = timedelta(milliseconds=500)
"""A job woken this close to its time runs now rather than being put back for a blink."""

WAITING = "scheduled,retrying"


async def run_job(deps: Deps, job_id: str) -> float | None:
    """Run one job. Returns seconds until it should run again, or None when done."""
    record = await deps.ledger.read(job_id)
    if record is None:
        log.warning("job.missing", job_id=job_id)
        return None
    if record.state in FINAL_STATUSES:
        return None
    job = record.job
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(job_id=job_id, portal=job.portal, line=job.from_line)
    portal = deps.settings.portals.get(job.portal)
    if portal is None:
        return await _end(
            deps, record, Status.DEAD, error=("PORTAL_NOT_CONFIGURED", f"no portal {job.portal!r}")
        )
    if record.state == Status.RUNNING:
        return await _interrupted(deps, record, portal, attempt=record.attempts)
    now = deps.clock()
    calendar = portal.calendar_for(job.from_line)
    decision = earliest_run(calendar, now=now, not_before=job.not_before_at, deadline=job.deadline_at)
    if isinstance(decision, Expired):
        return await _end(deps, record, Status.EXPIRED, error=(ErrorCode.DEADLINE_PASSED, decision.reason))
    if decision.at > now + EARLY_TOLERANCE:
        return await _put_back(deps, record, state=record.state, run_at=decision.at, now=now)
    hold = await take_slots(deps.limiter, record, portal, now=now) if deps.rate_limit else None
    if hold is not None:
        # a slot past the deadline: wake at the deadline, and expire then
        wake = min(hold.wake, job.deadline_at) if job.deadline_at else hold.wake
        deps.metrics.rate_limit_waits.labels(portal=portal.name).inc()
        return await _put_back(
            deps, record, state=record.state, run_at=wake, now=now, field=("slots", hold.slots_json)
        )
    spent = _spent_attempts(record)
    start = await deps.ledger.start_attempt(job_id, portal=portal.name, now=now, info={"spent_before": spent})
    if start.verdict == "halted":
        # credentials refused or a manual block: wait for the halt (spread out, so one job probes first)
        wake = now + timedelta(milliseconds=start.halted_ms) + timedelta(seconds=2 * deps.jitter())
        return await _put_back(deps, record, state=record.state, run_at=wake, now=now)
    if start.verdict == "interrupted":
        return await _interrupted(deps, record, portal, attempt=start.attempt)
    if start.verdict != "started":
        return None  # cancelled or finished elsewhere in the meantime
    return await _attempt(deps, record, portal, attempt=start.attempt, spent=spent, started_at=now)


async def _attempt(
    deps: Deps, record: JobRecord, portal: PortalConfig, *, attempt: int, spent: int, started_at: datetime
) -> float | None:
    job = record.job
    began = time.monotonic()
    latency = deps.metrics.bitrix_request_seconds.labels(
        portal=portal.name, method="voximplant.callback.start"
    )

    async def send(creds: Credentials) -> CallbackStarted:
        return await start_callback(
            deps.session,
            creds.base_url,
            from_line=job.from_line,
            to_number=job.to_number,
            text_to_pronounce=job.text_to_pronounce,
            voice=job.voice,
            access_token=creds.access_token,
            client_timeout=deps.client_timeout,
        )

    try:
        # an OAuth token that expired is refreshed once for all workers and the request repeated:
        # Bitrix24 refuses an expired token before running the method, so this cannot ring twice
        started = await send_with_refresh(deps.auth, portal, send)
    except (AuthRefused, AuthUnavailable) as exc:
        error = _auth_error(exc)
        verdict = classify(error)
        await deps.ledger.finish_attempt(
            job.job_id, attempt, _attempt_entry(deps, began, started_at, error=error, verdict=verdict)
        )
        return await _failed(deps, record, portal, error, verdict=verdict, attempt=attempt, spent=spent)
    except BitrixCallError as error:
        latency.observe(time.monotonic() - began)
        verdict = classify(error)
        deps.metrics.attempts.labels(portal=portal.name, result=str(verdict)).inc()
        await deps.ledger.finish_attempt(
            job.job_id, attempt, _attempt_entry(deps, began, started_at, error=error, verdict=verdict)
        )
        return await _failed(deps, record, portal, error, verdict=verdict, attempt=attempt, spent=spent + 1)
    except Exception as exc:
        # A bug after the attempt was recorded: the request may have gone out.
        log.exception("job.attempt_crashed")
        lost = BitrixCallError(f"{type(exc).__name__} during the request")
        return await _unknown(deps, record, portal, lost, attempt=attempt)
    latency.observe(time.monotonic() - began)
    deps.metrics.attempts.labels(portal=portal.name, result="success").inc()
    await deps.ledger.finish_attempt(
        job.job_id, attempt, _attempt_entry(deps, began, started_at, started=started)
    )
    return await _end(
        deps,
        record,
        Status.SUCCEEDED,
        attempts=attempt,
        call_id=started.call_id,
        dedupe_window_s=portal.dedupe_window_s,
    )


async def _failed(
    deps: Deps,
    record: JobRecord,
    portal: PortalConfig,
    error: BitrixCallError,
    *,
    verdict: Verdict,
    attempt: int,
    spent: int,
) -> float | None:
    now = deps.clock()
    log.warning("job.attempt_failed", attempt=attempt, verdict=str(verdict), code=error.code,
                http_status=error.http_status, description=error.description)  # fmt: skip
    if verdict == Verdict.PERMANENT:
        if isinstance(error, BitrixApiError) and not is_recognised(error.code):
            log.error(
                "bitrix.unrecognised_error", code=error.code, http_status=error.http_status, body=error.body
            )
        return await _end(deps, record, Status.DEAD, attempts=attempt, error=_error_of(error))
    if verdict == Verdict.UNKNOWN:
        return await _unknown(deps, record, portal, error, attempt=attempt)
    if verdict in (Verdict.PAUSE_PORTAL, Verdict.PAUSE_METHOD):
        # Refused before execution: the whole portal waits, and the attempt is not spent.
        method_block = verdict == Verdict.PAUSE_METHOD
        pause_s = await deps.limiter.pause(portal.name, effective_bucket(portal), method_block=method_block)
        log.warning("portal.paused", reason=error.code, pause_s=round(pause_s, 3))
        return await _retry_at(deps, record, now + timedelta(seconds=pause_s), now=now, error=error)
    if verdict in (Verdict.AUTH_BROKEN, Verdict.BLOCKED, Verdict.REFRESH_AUTH):
        # No job burns its attempts against wrong credentials: the portal halts for every worker.
        blocked = verdict == Verdict.BLOCKED
        halt_s = deps.block_s if blocked else deps.pause_s
        await deps.limiter.halt(
            portal.name, code=error.code or "", description=error.description, seconds=halt_s
        )
        log.error("portal.halted", code=error.code, description=error.description, halt_s=halt_s,
                  hint=_halt_hint(portal, blocked=blocked))  # fmt: skip
        return await _retry_at(deps, record, now + timedelta(seconds=halt_s), now=now, error=error)
    if spent >= portal.max_attempts:
        return await _end(
            deps,
            record,
            Status.DEAD,
            attempts=attempt,
            error=_error_of(error, f"gave up after {spent} attempts: "),
        )
    delay = backoff_delay_s(spent, base_s=deps.retry_base_s, jitter=deps.jitter())
    return await _retry_at(
        deps, record, now + timedelta(seconds=delay), now=now, error=error, attempts=attempt
    )


async def _unknown(
    deps: Deps, record: JobRecord, portal: PortalConfig, error: BitrixCallError, *, attempt: int
) -> float | None:
    if portal.retry_unknown:
        now = deps.clock()
        log.warning("job.unknown_result_retried", attempt=attempt)
        delay = backoff_delay_s(max(attempt, 1), base_s=deps.retry_base_s, jitter=deps.jitter())
        return await _retry_at(
            deps, record, now + timedelta(seconds=delay), now=now, error=error, attempts=attempt
        )
    detail = f"HTTP {error.http_status}: " if error.http_status else ""
    code = f" {error.code}" if error.code else ""
    description = (
        f"the request may have started the callback ({detail}{code.strip()} {error.description})".replace(
            "  ", " "
        )
    )
    return await _end(
        deps, record, Status.DEAD, attempts=attempt, error=(ErrorCode.OUTCOME_UNKNOWN, description)
    )


async def _interrupted(deps: Deps, record: JobRecord, portal: PortalConfig, *, attempt: int) -> float | None:
    error = BitrixCallError(
        f"attempt {attempt} was interrupted (the worker stopped while the request was in flight)"
    )
    await deps.ledger.finish_attempt(
        record.job_id, attempt, {"ended_at": deps.clock().isoformat(), "interrupted": True}
    )
    if portal.retry_unknown:
        now = deps.clock()
        return await _retry_at(deps, record, now, now=now, error=error, attempts=attempt, allowed="running")
    return await _unknown(deps, record, portal, error, attempt=attempt)


async def _retry_at(
    deps: Deps,
    record: JobRecord,
    wanted: datetime,
    *,
    now: datetime,
    error: BitrixCallError,
    attempts: int | None = None,
    allowed: str = "running",
) -> float | None:
    """Schedule the next try inside business hours and before the deadline, or expire."""
    portal = deps.settings.portals[record.job.portal]
    job = record.job
    decision = earliest_run(
        portal.calendar_for(job.from_line), now=wanted, not_before=job.not_before_at, deadline=job.deadline_at
    )
    if isinstance(decision, Expired):
        last = _error_of(error)[1]
        return await _end(deps, record, Status.EXPIRED, attempts=attempts,
                          error=(ErrorCode.DEADLINE_PASSED, f"{decision.reason}; last error: {last}"))  # fmt: skip
    deps.metrics.retries.labels(portal=job.portal, code=_error_of(error)[0]).inc()
    return await _put_back(deps, record, state=Status.RETRYING, run_at=decision.at, now=now, allowed=allowed)


async def _put_back(
    deps: Deps,
    record: JobRecord,
    *,
    state: Status,
    run_at: datetime,
    now: datetime,
    allowed: str = WAITING,
    field: tuple[str, str] | None = None,
) -> float | None:
    result = await deps.ledger.reschedule(
        record.job_id, state=state, run_at=run_at, allowed=allowed, field=field
    )
    if result != "ok":
        return None  # cancelled meanwhile
    log.info("job.deferred", state=str(state), run_at=run_at.isoformat())
    return max((run_at - now).total_seconds(), 0.0)


async def _end(
    deps: Deps,
    record: JobRecord,
    status: Status,
    *,
    attempts: int | None = None,
    call_id: str | None = None,
    error: tuple[str, str] | None = None,
    dedupe_window_s: float = 0.0,
) -> float | None:
    job: CallbackJob = record.job
    outcome = outcome_for(
        job,
        status,
        at=deps.clock(),
        attempts=record.attempts if attempts is None else attempts,
        call_id=call_id,
        error=OutcomeError(code=str(error[0]), description=error[1]) if error else None,
    )
    result = await deps.ledger.finalize(outcome, job=job, dedupe_window_s=dedupe_window_s)
    if result.written:
        deps.metrics.jobs_finished.labels(portal=job.portal, status=str(status)).inc()
        log.info("job.finished", status=str(status), attempts=outcome.attempts, call_id=call_id,
                 error_code=error[0] if error else None)  # fmt: skip
    return None  # a final outcome: nothing left to run


def _spent_attempts(record: JobRecord) -> int:
    """Attempts that count against ``max_attempts``: not the ones the portal's rate limit refused."""
    return sum(1 for entry in record.attempt_log if entry.get("counts", True))


def _attempt_entry(
    deps: Deps,
    began: float,
    started_at: datetime,
    *,
    started: CallbackStarted | None = None,
    error: BitrixCallError | None = None,
    verdict: Verdict | None = None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "started_at": started_at.isoformat(),
        "ended_at": deps.clock().isoformat(),
        "duration_ms": round((time.monotonic() - began) * 1000),
    }
    if started is not None:
        entry.update(http_status=started.http_status, call_id=started.call_id)
    if error is not None:
        entry.update(http_status=error.http_status, code=error.code, description=error.description[:500],
                     verdict=str(verdict))  # fmt: skip
        if verdict in (Verdict.PAUSE_PORTAL, Verdict.PAUSE_METHOD, Verdict.AUTH_BROKEN, Verdict.BLOCKED):
            entry["counts"] = False
    return entry


def _halt_hint(portal: PortalConfig, *, blocked: bool) -> str:
    """What ops should do about a halted portal."""
    name = portal.name
    if blocked:
        return f"Bitrix24 blocked this portal manually: ask Bitrix24 support, then `callq resume {name}`"
    if portal.oauth is not None:
        return (
            f"re-authorize the app of portal {name!r}: put its new refresh token in "
            f"CALLQ_PORTAL_{name.upper().replace('-', '_')}_OAUTH_REFRESH_TOKEN, restart, `callq resume {name}`"
        )
    return (
        f"check the webhook of portal {name!r} (URL, expiry, scopes call and telephony, the user's permission "
        f"'Outgoing call - Perform - any'); `callq resume {name}` after fixing it"
    )


def _auth_error(exc: AuthRefused | AuthUnavailable) -> BitrixApiError:
    """An OAuth refresh that failed, as the Bitrix24 error the classification knows: a refusal halts
    the portal (re-authorize the app), an unreachable token endpoint pauses it; neither spends an
    attempt, since nothing was sent."""
    if isinstance(exc, AuthRefused):
        return BitrixApiError(http_status=exc.http_status or 401, code=exc.code, description=exc.description)
    return BitrixApiError(
        http_status=exc.http_status or 503, code="OAUTH_UNAVAILABLE", description=exc.description
    )


def _error_of(error: BitrixCallError, prefix: str = "") -> tuple[str, str]:
    if isinstance(error, BitrixApiError):
        return error.code or "BITRIX_ERROR", f"{prefix}{error.description} (HTTP {error.http_status})"
    if isinstance(error, BitrixHttpError):
        return f"HTTP_{error.http_status}", f"{prefix}{error.description}"
    return "TRANSPORT_ERROR", f"{prefix}{error.description}"
