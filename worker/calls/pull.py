"""The pull side of a call's follow-up: ask ``voximplant.statistic.get`` about calls whose end was not pushed.

Every worker runs :func:`keep_following`: every ``every_s`` it takes the jobs whose call is due to be
asked about (``{p}:calls``, each claimed for one request), and for each takes a *spare* slot of its
portal's bucket (:meth:`schemas.store.calls.CallStore.reserve_spare`: only while half the bucket, or at
least one slot, stays free, or the bucket is idle; never ahead of time, so a queue of callbacks never
waits behind a follow-up), asks for the
statistics row of its CALL_ID, and records the end (:func:`schemas.store.calls.settle_call_end`) or
asks again later with doubling waits (:func:`schemas.policy.followup.poll_delay_s`). A call awaited
for the whole horizon ends ``unknown``. It also ends the redials whose lease lapsed (their worker
died after marking them): ``unknown``, never dialled again.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta
from typing import Any

import structlog
from redis.exceptions import RedisError

from schemas.policy.call_result import CallEnd, CallKind, call_end_from_fields
from schemas.policy.followup import past_horizon, poll_delay_s
from schemas.policy.log_redaction import KNOWN_NUMBERS, bind_job_number
from schemas.states import CallState
from schemas.store.calls import settle_call_end
from schemas.store.records import JobRecord, from_ms
from worker.bitrix.errors import AuthRefused, AuthUnavailable, BitrixCallError
from worker.bitrix.portal_call import call_portal
from worker.jobs.deps import Deps
from worker.jobs.pacing import effective_bucket

log = structlog.get_logger("callq.calls")

STATISTIC_GET = "voximplant.statistic.get"
CALLBACK_CALL_TYPE = 4
BATCH = 50
CLAIM_S = 60.0
"""A job taken to be asked about is not taken by another worker for this long (one request)."""

EVENT_CALL_ENDED = "call.ended"
EVENT_STATISTICS_FAILED = "call.statistics_failed"
EVENT_FOLLOW_FAILED = "call.follow_failed"


async def follow_once(deps: Deps) -> int:
    """One round: ask about the due calls, end the lapsed redials. Returns how many it looked at."""
    assert deps.calls is not None
    due = await deps.calls.due(limit=BATCH, claim_s=CLAIM_S)
    for job_id in due.lapsed:
        record = await deps.ledger.read(job_id)
        if record is not None and record.call is not None and record.call.state is CallState.DIALLING:
            lost = CallEnd(call_id=record.call.call_id or "", kind=CallKind.UNKNOWN, source="lapsed")
            await settle(deps, record, lost, expect=frozenset({CallState.DIALLING}))
    for job_id in due.awaiting:
        record = await deps.ledger.read(job_id)
        if record is None or record.call is None or record.call.state is not CallState.AWAITING:
            continue
        await _ask(deps, record, now_ms=due.now_ms)
    return len(due.awaiting) + len(due.lapsed)


async def _ask(deps: Deps, record: JobRecord, *, now_ms: int) -> None:
    assert deps.calls is not None and record.call is not None
    job, call = record.job, record.call
    portal = deps.settings.portals.get(job.portal)
    call_id = call.call_id or ""
    if portal is None:
        return
    timing = portal.calls.timing
    if past_horizon(timing, placed_ms=call.since_ms, now_ms=now_ms):
        await settle(deps, record, CallEnd(call_id=call_id, kind=CallKind.UNKNOWN, source="horizon"))
        return
    wait_s = await deps.calls.reserve_spare(portal.name, effective_bucket(portal))
    if wait_s > 0:
        # no spare slot: callbacks come first
        await deps.calls.poll_later(
            job.job_id, call_id=call_id, at=from_ms(now_ms) + timedelta(seconds=wait_s)
        )
        return
    deps.metrics.statistics_requests.labels(portal=portal.name).inc()
    params: dict[str, Any] = {"FILTER": {"CALL_ID": call_id, "CALL_TYPE": CALLBACK_CALL_TYPE}}
    try:
        answer = await call_portal(
            deps.session,
            portal,
            STATISTIC_GET,
            params,
            auth=deps.auth,
            addresses=deps.addresses,
            client_timeout=deps.client_timeout,
        )
    except (BitrixCallError, AuthRefused, AuthUnavailable) as exc:
        log.warning(EVENT_STATISTICS_FAILED, job_id=job.job_id, portal=portal.name, error=type(exc).__name__)
        answer = {"result": []}
    rows = answer.get("result")
    row = (
        next(
            (r for r in rows if isinstance(r, dict) and str(r.get("CALL_ID")) == call_id),
            None,
        )
        if isinstance(rows, list)
        else None
    )
    end = call_end_from_fields(row, source="pull") if row is not None else None
    if end is None:
        wait = poll_delay_s(timing, polls_done=call.polls + 1)
        await deps.calls.poll_later(job.job_id, call_id=call_id, at=deps.clock() + timedelta(seconds=wait))
        return
    await settle(deps, record, end)


async def settle(
    deps: Deps,
    record: JobRecord,
    end: CallEnd,
    *,
    expect: frozenset[CallState] = frozenset({CallState.AWAITING}),
    token: str = "",
) -> None:
    """Record a call's end found by this worker, and count it."""
    assert deps.calls is not None
    now: datetime = deps.clock()
    structlog.contextvars.bind_contextvars(job_id=record.job_id, portal=record.job.portal)
    bind_job_number(record.job.to_number)
    try:
        written = await settle_call_end(
            deps.calls, deps.settings, record, end, now=now, expect=expect, token=token
        )
        if written.done:
            count_call_end(deps, record, end, ended=written.state == CallState.ENDED, now=now)
            log.info(EVENT_CALL_ENDED, result=str(end.kind), source=end.source, call_state=written.state)
    finally:
        structlog.contextvars.unbind_contextvars("job_id", "portal", KNOWN_NUMBERS)


def count_call_end(deps: Deps, record: JobRecord, end: CallEnd, *, ended: bool, now: datetime) -> None:
    """The metrics of one call's end (and of the job's final call result)."""
    deps.metrics.count_call_end(record, end, ended=ended, now=now)


async def keep_following(deps: Deps, *, every_s: float = 1.0) -> None:
    """Follow calls every ``every_s`` (jittered) until cancelled; a Redis error is logged, not fatal."""
    while True:
        await asyncio.sleep(every_s * (0.75 + random.random() / 2))
        try:
            await follow_once(deps)
        except (RedisError, OSError) as exc:
            log.warning(EVENT_FOLLOW_FAILED, error=type(exc).__name__)
