"""What a failed attempt leads to: the classifier's verdict acted on (retry, pause, halt or end).

:func:`handle_failure` takes the verdict of :func:`worker.policy.classify.classify` and pauses or halts
the portal, retries with backoff or ends the job; a result that may have started the callback
(:func:`handle_unknown`, :func:`handle_interrupted`) is retried only where the portal allows it.
"""

from __future__ import annotations

import json
from datetime import timedelta

import structlog

from schemas.config import PortalConfig
from schemas.store.records import JobRecord
from schemas.wire.outcome import ErrorCode, Status
from worker.bitrix.errors import AuthRefused, AuthUnavailable, BitrixApiError, BitrixCallError
from worker.jobs.deps import Deps
from worker.jobs.pacing import effective_bucket
from worker.jobs.settle import attempt_of, end_job, error_of, retry_at
from worker.policy.backoff import backoff_delay_s
from worker.policy.classify import Verdict, is_recognised

log = structlog.get_logger("callq.worker")

UNKNOWN_RESULT = "the request may have started the callback"


async def handle_failure(
    deps: Deps,
    record: JobRecord,
    portal: PortalConfig,
    error: BitrixCallError,
    *,
    verdict: Verdict,
    attempt: int,
    spent: int,
) -> float | None:
    """Act on a failed attempt's verdict: end the job, pause or halt the portal, or retry with backoff.

    Args:
        deps: The worker's collaborators.
        record: The job's record.
        portal: The job's portal.
        error: What went wrong.
        verdict: The classification of ``error``.
        attempt: The number of the attempt that failed.
        spent: Attempts spent against ``max_attempts``, this one included when its request was sent.

    Returns:
        Seconds until the job runs again, or None when it ended.
    """
    now = deps.clock()
    log.warning("job.attempt_failed", attempt=attempt, verdict=str(verdict), code=error.code,
                http_status=error.http_status, description=error.description)  # fmt: skip
    if verdict == Verdict.PERMANENT:
        if isinstance(error, BitrixApiError) and not is_recognised(error.code):
            log.error(
                "bitrix.unrecognised_error", code=error.code, http_status=error.http_status, body=error.body
            )
        return await end_job(deps, record, Status.DEAD, attempts=attempt, error=error_of(error))
    if verdict == Verdict.UNKNOWN:
        return await handle_unknown(deps, record, portal, error, attempt=attempt)
    if verdict in (Verdict.PAUSE_PORTAL, Verdict.PAUSE_METHOD):
        # Refused before execution: the whole portal waits, and the attempt is not spent.
        method_block = verdict == Verdict.PAUSE_METHOD
        pause_s = await deps.limiter.pause(portal.name, effective_bucket(portal), method_block=method_block)
        log.warning("portal.paused", reason=error.code, pause_s=round(pause_s, 3))
        return await retry_at(
            deps,
            record,
            now + timedelta(seconds=pause_s),
            now=now,
            error=error,
            held_by=portal.name,
            held_s=pause_s,
        )
    if verdict in (Verdict.AUTH_BROKEN, Verdict.BLOCKED, Verdict.REFRESH_AUTH):
        # No job burns its attempts against wrong credentials: the portal halts for every worker.
        blocked = verdict == Verdict.BLOCKED
        halt_s = deps.block_s if blocked else deps.pause_s
        await deps.limiter.halt(
            portal.name, code=error.code or "", description=error.description, seconds=halt_s
        )
        log.error("portal.halted", code=error.code, description=error.description, halt_s=halt_s,
                  hint=_halt_hint(portal, blocked=blocked))  # fmt: skip
        return await retry_at(
            deps,
            record,
            now + timedelta(seconds=halt_s),
            now=now,
            error=error,
            held_by=portal.name,
            held_s=halt_s,
        )
    if spent >= portal.max_attempts:
        return await end_job(
            deps,
            record,
            Status.DEAD,
            attempts=attempt,
            error=error_of(error, f"gave up after {spent} attempts"),
        )
    delay = backoff_delay_s(spent, base_s=deps.retry_base_s, jitter=deps.jitter())
    return await retry_at(
        deps, record, now + timedelta(seconds=delay), now=now, error=error, attempts=attempt
    )


async def handle_unknown(
    deps: Deps,
    record: JobRecord,
    portal: PortalConfig,
    error: BitrixCallError,
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
        error: What went wrong.
        attempt: The attempt whose result is unknown.
        closed: The closed attempt entry (``{"attempt:N": json}``) to write in the same step.
        orphan_seen_ms: Only if the attempt is orphaned (:mod:`worker.jobs.orphans`).

    Returns:
        Seconds until the job runs again, or None when it ended.
    """
    now = deps.clock()
    if portal.retry_unknown:
        log.warning("job.unknown_result_retried", attempt=attempt)
        delay = (
            0.0
            if closed
            else backoff_delay_s(max(attempt, 1), base_s=deps.retry_base_s, jitter=deps.jitter())
        )
        return await retry_at(
            deps,
            record,
            now + timedelta(seconds=delay),
            now=now,
            error=error,
            attempts=attempt,
            fields=closed,
            orphan_seen_ms=orphan_seen_ms,
        )
    return await end_job(
        deps,
        record,
        Status.DEAD,
        attempts=attempt,
        error=(
            ErrorCode.OUTCOME_UNKNOWN,
            unknown_result_description(error.http_status, error.code, error.description),
        ),
        attempt_entry=attempt_of(closed),
        orphan_seen_ms=orphan_seen_ms,
    )


def unknown_result_description(http_status: int | None, code: str | None, description: str | None) -> str:
    """The ``OUTCOME_UNKNOWN`` description: what is known of the answer, in brackets. Pure.

    ``(HTTP 500, INTERNAL_SERVER_ERROR: text)``; each part that is absent (or blank) is left out
    with its separator, and the brackets too when nothing is known.
    """
    known = [f"HTTP {http_status}" if http_status else "", (code or "").strip()]
    head = ", ".join(part for part in known if part)
    text = (description or "").strip()
    detail = f"{head}: {text}" if head and text else head or text
    return f"{UNKNOWN_RESULT} ({detail})" if detail else UNKNOWN_RESULT


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
    return await handle_unknown(
        deps, record, portal, error, attempt=attempt, closed=closed, orphan_seen_ms=seen_ms
    )


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


def auth_error(exc: AuthRefused | AuthUnavailable) -> BitrixApiError:
    """An OAuth refresh that failed, as the Bitrix24 error the classification knows: a refusal halts
    the portal (re-authorize the app), an unreachable token endpoint pauses it; neither spends an
    attempt, since nothing was sent."""
    if isinstance(exc, AuthRefused):
        return BitrixApiError(http_status=exc.http_status or 401, code=exc.code, description=exc.description)
    return BitrixApiError(
        http_status=exc.http_status or 503, code="OAUTH_UNAVAILABLE", description=exc.description
    )
