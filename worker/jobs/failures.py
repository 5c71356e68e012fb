"""What a failed attempt leads to: the one place a classified :class:`~worker.policy.classify.Failure`
is acted on (retry, pause or halt the portal, or end the job).

A result that may have started the callback (:func:`handle_unknown`, :func:`handle_interrupted`)
is retried only where the portal allows it (``retry_unknown``).
"""

from __future__ import annotations

import json
from datetime import timedelta

import structlog

from schemas.config import PortalConfig
from schemas.states import Status
from schemas.store.records import JobRecord
from schemas.wire.codes import ErrorCode
from worker.bitrix.codes import BitrixCode
from worker.bitrix.errors import AuthRefused, AuthUnavailable, BitrixApiError, BitrixCallError
from worker.jobs.deps import Deps
from worker.jobs.operating import pause_after_refusal
from worker.jobs.pacing import effective_bucket
from worker.jobs.settle import attempt_of, end_job, retry_at
from worker.policy.backoff import backoff_delay_s
from worker.policy.classify import Failure, Verdict

log = structlog.get_logger("callq.worker")


async def handle_failure(
    deps: Deps, record: JobRecord, portal: PortalConfig, failure: Failure, *, attempt: int, spent: int
) -> float | None:
    """Act on a failed attempt: end the job, pause or halt the portal, or retry with backoff.

    Args:
        deps: The worker's collaborators.
        record: The job's record.
        portal: The job's portal.
        failure: What went wrong, classified (:func:`worker.policy.classify.classify`).
        attempt: The number of the attempt that failed.
        spent: Attempts spent against ``max_attempts``, this one included if it spends one.

    Returns:
        Seconds until the job runs again, or None when it ended.
    """
    now = deps.clock()
    error, verdict = failure.error, failure.verdict
    log.warning(
        "job.attempt_failed",
        attempt=attempt,
        verdict=str(verdict),
        code=error.code,
        http_status=error.http_status,
        description=error.description,
    )
    if verdict is Verdict.PERMANENT:
        if not failure.recognised and isinstance(error, BitrixApiError):
            log.error(
                "bitrix.unrecognised_error", code=error.code, http_status=error.http_status, body=error.body
            )
        return await end_job(deps, record, Status.DEAD, attempts=attempt, error=failure.outcome_error())
    if verdict is Verdict.UNKNOWN:
        return await handle_unknown(deps, record, portal, failure, attempt=attempt)
    if failure.pauses_portal:
        # Refused before execution: the whole portal waits, and the attempt is not spent.
        if verdict is Verdict.PAUSE_METHOD:
            reading = error.operating if isinstance(error, BitrixApiError) else None
            pause_s = await pause_after_refusal(deps.limiter, portal, reading, now_s=now.timestamp())
        else:
            pause_s = await deps.limiter.pause(portal.name, effective_bucket(portal))
        log.warning("portal.paused", reason=error.code, pause_s=round(pause_s, 3))
        wanted = now + timedelta(seconds=pause_s)
        return await retry_at(
            deps, record, wanted, now=now, failure=failure, held_by=portal.name, held_s=pause_s
        )
    if failure.halts_portal:
        # Every other job would be refused alike: the portal halts once for every worker, no job
        # spends an attempt on it, and the job that halted it probes first when the halt lapses.
        halt_s = failure.halt_s(deps.halts)
        code = error.code or failure.outcome_error()[0]  # HTTP_403: refused in front of the portal
        halt = await deps.limiter.halt(portal.name, code=code, description=error.description, seconds=halt_s)
        if halt.new:
            deps.metrics.portal_halts.labels(portal=portal.name, code=code.upper()).inc()
            log.error(
                "portal.halted",
                code=error.code,
                description=error.description,
                halt_s=halt_s,
                hint=halt_hint(portal, failure),
            )
        wait_s = halt.remaining_s if halt.new else halt.remaining_s + 2 * deps.jitter()
        wanted = now + timedelta(seconds=wait_s)
        return await retry_at(
            deps, record, wanted, now=now, failure=failure, held_by=portal.name, held_s=halt.remaining_s
        )
    if spent >= portal.max_attempts:
        error_pair = failure.outcome_error(f"gave up after {spent} attempts")
        return await end_job(deps, record, Status.DEAD, attempts=attempt, error=error_pair)
    delay = backoff_delay_s(spent, base_s=deps.retry_base_s, jitter=deps.jitter())
    return await retry_at(
        deps, record, now + timedelta(seconds=delay), now=now, failure=failure, attempts=attempt
    )


async def handle_unknown(
    deps: Deps,
    record: JobRecord,
    portal: PortalConfig,
    failure: Failure,
    *,
    attempt: int,
    closed: dict[str, str] | None = None,
    orphan_seen_ms: int | None = None,
) -> float | None:
    """The request may have started the callback: retry only if the portal says ``retry_unknown``,
    else end the job ``dead`` with ``OUTCOME_UNKNOWN``.

    Args:
        deps: The worker's collaborators.
        record: The job's record.
        portal: The job's portal.
        failure: What went wrong.
        attempt: The attempt whose result is unknown.
        closed: The closed attempt entry (``{"attempt:N": json}``) to write in the same step.
        orphan_seen_ms: Only if the attempt is orphaned (:mod:`worker.jobs.orphans`).

    Returns:
        Seconds until the job runs again, or None when it ended.
    """
    now = deps.clock()
    if portal.retry_unknown:
        log.warning("job.unknown_result_retried", attempt=attempt)
        backoff = backoff_delay_s(max(attempt, 1), base_s=deps.retry_base_s, jitter=deps.jitter())
        delay = 0.0 if closed else backoff
        return await retry_at(
            deps,
            record,
            now + timedelta(seconds=delay),
            now=now,
            failure=failure,
            attempts=attempt,
            fields=closed,
            orphan_seen_ms=orphan_seen_ms,
        )
    return await end_job(
        deps,
        record,
        Status.DEAD,
        attempts=attempt,
        error=(ErrorCode.OUTCOME_UNKNOWN, failure.unknown_description()),
        attempt_entry=attempt_of(closed),
        orphan_seen_ms=orphan_seen_ms,
    )


async def handle_interrupted(
    deps: Deps, record: JobRecord, portal: PortalConfig, *, attempt: int, seen_ms: int
) -> float | None:
    """Nobody works on attempt ``attempt`` any more (its lease lapsed at ``seen_ms``): close it and
    treat its result as unknown (retried at once if the portal says ``retry_unknown``).

    Every write is guarded: if the attempt's lease came alive again (its worker was only cut off
    from Redis), nothing is written and the job is looked at again later.

    Returns:
        Seconds until the job runs again, or None when it ended.
    """
    error = BitrixCallError(
        f"attempt {attempt} was interrupted (its worker stopped, or lost Redis for longer than "
        f"its {deps.leases.timing.lease_s:g} s lease, while the request was in flight)"
    )
    started = record.attempt_log[attempt - 1] if 0 < attempt <= len(record.attempt_log) else {}
    entry = {**started, "ended_at": deps.clock().isoformat(), "interrupted": True}
    closed = {f"attempt:{attempt}": json.dumps(entry, separators=(",", ":"))}
    failure = Failure(Verdict.UNKNOWN, error)
    return await handle_unknown(
        deps, record, portal, failure, attempt=attempt, closed=closed, orphan_seen_ms=seen_ms
    )


def halt_hint(portal: PortalConfig, failure: Failure) -> str:
    """What ops should do about a portal halted for ``failure``."""
    name, code = portal.name, BitrixCode.of(failure.error.code)
    resume = f"then `callq resume {name}`"
    if failure.verdict is Verdict.BLOCKED:
        if code is BitrixCode.PORTAL_DELETED:
            return f"portal {name!r} is deleted or its public part is closed: reopen it, {resume}"
        return f"Bitrix24 blocked this portal manually: ask Bitrix24 support, {resume}"
    if failure.verdict is Verdict.PORTAL_REFUSED:
        who = "app" if portal.oauth is not None else "webhook"
        hints = {
            BitrixCode.INSUFFICIENT_SCOPE: f"grant portal {name!r}'s {who} the scopes call and telephony",
            BitrixCode.ACCESS_DENIED: (
                f"give the user of portal {name!r}'s {who} the permission 'Outgoing call - Perform - any' "
                "(and check that the plan includes the REST API)"
            ),
            BitrixCode.ERROR_METHOD_NOT_FOUND: (
                f"voximplant.callback.start is unavailable on portal {name!r}: check its telephony and "
                f"the {who}'s scopes call and telephony"
            ),
            BitrixCode.PAYMENT_REQUIRED: f"the subscription of portal {name!r}'s app has ended: renew it",
        }
        front = (
            f"portal {name!r} answered HTTP {failure.error.http_status} without a Bitrix24 answer: a "
            "firewall or proxy in front of it, or a wrong webhook address"
        )
        fix = (hints.get(code) if code else None) or (
            front if code is None else f"Bitrix24 refuses portal {name!r} as a whole: fix it there"
        )
        return f"{fix}; `callq check` shows what is missing; {resume}"
    if portal.oauth is not None:
        return (
            f"re-authorize the app of portal {name!r}: put its new refresh token in "
            f"CALLQ_PORTAL_{name.upper().replace('-', '_')}_OAUTH_REFRESH_TOKEN, restart, `callq resume {name}`"
        )
    return (
        f"check the webhook of portal {name!r} (URL, expiry, scopes call and telephony, the user's permission "
        f"'Outgoing call - Perform - any'); `callq resume {name}` after fixing it"
    )


def auth_error(exc: AuthRefused | AuthUnavailable) -> BitrixApiError:
    """An OAuth refresh that failed, as the Bitrix24 error the classification knows: a refusal halts
    the portal (re-authorize the app), an unreachable token endpoint pauses it; neither spends an
    attempt, since nothing was sent."""
    if isinstance(exc, AuthRefused):
        return BitrixApiError(http_status=exc.http_status or 401, code=exc.code, description=exc.description)
    return BitrixApiError(
        http_status=exc.http_status or 503, code=ErrorCode.OAUTH_UNAVAILABLE, description=exc.description
    )
