"""A redial keeps the line's hours and the job's deadline up to the moment its request leaves: a slow
redirect of a moved portal, or a clock that crossed the closing time since the redial was marked,
sends nothing; the redial waits for the next opening, or its call result is final (``deadline``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web
from redis.asyncio import Redis

from ops.redis_server import free_port
from ops.sandbox import Sandbox, SandboxHandle
from producers.api import Producer
from schemas.clock import Clock, utcnow
from schemas.config import CallsConfig, Settings
from schemas.policy.calendar import parse_hours
from schemas.policy.call_result import CallEnd, CallKind
from schemas.policy.redial import RedialPolicy
from schemas.states import CallState
from schemas.store.calls import CallStore, settle_call_end
from schemas.store.keys import Keys
from schemas.store.ledger import Ledger
from schemas.store.records import JobRecord
from tests.support.helpers import make_settings, read_call_results, sandbox_portal
from worker.bitrix.address import PortalAddresses
from worker.bitrix.oauth import PortalAuth
from worker.jobs.deps import Deps
from worker.jobs.leases import AttemptLeases, LeaseTiming
from worker.jobs.ratelimit import RateLimiter
from worker.jobs.run import run_job

MSK = ZoneInfo("Europe/Moscow")
CALLS = CallsConfig(redial=RedialPolicy(redial_on=frozenset({CallKind.BUSY}), delays_s=(0.1,), max_redials=1))
WEEKDAYS = parse_hours({d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")}, where="test")


def deps_for(
    redis: Redis, prefix: str, settings: Settings, session: aiohttp.ClientSession, clock: Clock = utcnow
) -> Deps:
    ledger = Ledger(redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=100)
    return Deps(
        settings=settings,
        ledger=ledger,
        session=session,
        limiter=RateLimiter(redis, keys=Keys(prefix)),
        auth=PortalAuth(redis, prefix=prefix, session=session),
        addresses=PortalAddresses(redis, Keys(prefix)),
        leases=AttemptLeases(ledger, timing=LeaseTiming()),
        clock=clock,
        rate_limit=False,
        calls=CallStore(redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=100),
    )


async def busy_call(deps: Deps, job_id: str) -> JobRecord:
    """Run the job's first attempt (a call placed), and end its call busy: it waits for its redial."""
    assert deps.calls is not None
    assert await run_job(deps, job_id) is None
    record = await deps.ledger.read(job_id)
    assert record is not None and record.call is not None and record.call.call_id
    end = CallEnd(call_id=record.call.call_id, kind=CallKind.BUSY, code="486")
    await settle_call_end(deps.calls, deps.settings, record, end, now=deps.clock())
    record = await deps.ledger.read(job_id)
    assert record is not None and record.call is not None and record.call.state == CallState.REDIAL
    return record


async def test_a_redial_behind_a_slow_redirect_past_the_deadline_is_not_sent(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """The redial is marked inside the job's window; the portal's old address answers its 302 only
    after the deadline: the redial is not sent to the new address, its call result is final
    (``deadline``), and the sandbox saw only the first call."""
    slow_s = [0.0]

    async def moved(request: web.Request) -> web.Response:
        await asyncio.sleep(slow_s[0])  # the old address, answering slowly
        raise web.HTTPFound(portal.base_url + request.path)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        direct = make_settings(
            redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"), calls=CALLS)}
        )
        old_url = portal.webhook_url("default").replace(portal.base_url, f"http://127.0.0.1:{port}")
        moved_settings = make_settings(redis_url, prefix, {"default": sandbox_portal(old_url, calls=CALLS)})
        deadline = datetime.now(UTC) + timedelta(seconds=2)
        job = await Producer(redis, settings=direct).enqueue(
            from_line="reg1332", to_number="+79111234567", text_to_pronounce="Hi", deadline=deadline
        )
        async with aiohttp.ClientSession() as session:
            await busy_call(deps_for(redis, prefix, direct, session), job.job_id)
            assert len(sandbox.calls(executed_only=True)) == 1
            slow_s[0] = (deadline - datetime.now(UTC)).total_seconds() + 1.0  # inside the request timeout
            await run_job(deps_for(redis, prefix, moved_settings, session), job.job_id)
        assert len(sandbox.calls(executed_only=True)) == 1, "the redial was sent after the deadline"
        (result,) = await read_call_results(redis, prefix)
        assert (result["result"], result["ended_by"]) == ("busy", "deadline")
    finally:
        await runner.cleanup()


async def test_a_redial_whose_line_closed_since_it_was_marked_waits_for_the_next_opening(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """Open when the redial wakes (17:59:59.8), closed by the time its request would leave
    (18:00:00.2): nothing is sent; the redial waits for 09:00 the next day."""
    before = datetime(2026, 11, 23, 17, 59, 59, 800_000, tzinfo=MSK)  # Monday
    after = datetime(2026, 11, 23, 18, 0, 0, 200_000, tzinfo=MSK)
    settings = make_settings(
        redis_url,
        prefix,
        {"default": sandbox_portal(portal.webhook_url("default"), timezone=MSK, hours=WEEKDAYS, calls=CALLS)},
    )
    now = [before - timedelta(minutes=10)]
    job = await Producer(redis, settings=settings).enqueue(
        from_line="reg1332", to_number="+79111234567", text_to_pronounce="Hi"
    )
    async with aiohttp.ClientSession() as session:
        await busy_call(deps_for(redis, prefix, settings, session, clock=lambda: now[0]), job.job_id)
        readings = iter([before])
        clock: Callable[[], datetime] = lambda: next(readings, after)
        await run_job(deps_for(redis, prefix, settings, session, clock=clock), job.job_id)
    assert len(sandbox.calls(executed_only=True)) == 1, "the redial was sent after closing"
    record = await Ledger(redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=100).read(job.job_id)
    assert record is not None and record.call is not None
    assert record.call.state == CallState.REDIAL
    assert record.run_at == datetime(2026, 11, 24, 9, 0, tzinfo=MSK)
    assert await read_call_results(redis, prefix) == []
