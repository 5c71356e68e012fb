"""Business hours, deadlines and scheduled callbacks, end to end on Redis (clock passed in where it matters)."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import holidays
from aiohttp import web
from redis.asyncio import Redis

from ops.cli import jobs as producer_cli
from ops.redis_server import free_port
from ops.sandbox import Sandbox, SandboxHandle
from producers.api import Producer
from schemas.config import LineConfig
from schemas.policy.calendar import DAY_KEYS, WeeklyHours, parse_hours
from schemas.store.keys import Keys
from schemas.store.ledger import Ledger
from schemas.store.records import JobRecord
from tests.support.helpers import ALWAYS_OPEN, make_settings, running_worker, sandbox_portal, wait_for
from worker.bitrix.address import PortalAddresses
from worker.bitrix.oauth import PortalAuth
from worker.jobs.deps import Deps
from worker.jobs.leases import AttemptLeases, LeaseTiming
from worker.jobs.ratelimit import RateLimiter
from worker.jobs.run import run_job

TEXT = "Callback request"
TOKYO = ZoneInfo("Asia/Tokyo")
MSK = ZoneInfo("Europe/Moscow")


def only_tomorrow(tz: ZoneInfo, window: str = "10:00-11:00") -> tuple[WeeklyHours, datetime]:
    """Hours open only tomorrow (in tz) in `window`, and tomorrow's opening instant."""
    today = datetime.now(tz).date()
    tomorrow = today + timedelta(days=1)
    hours = parse_hours({DAY_KEYS[tomorrow.weekday()]: window}, where="test")
    start = datetime.combine(tomorrow, datetime.strptime(window[:5], "%H:%M").time(), tzinfo=tz)
    return hours, start


async def test_closed_now_runs_at_tomorrows_opening(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """Closed now, open tomorrow 10:00-11:00: not called; `scheduled` with run_at tomorrow 10:00 portal time."""
    hours, opening = only_tomorrow(TOKYO)
    settings = make_settings(
        redis_url,
        prefix,
        {"default": sandbox_portal(portal.webhook_url("default"), timezone=TOKYO, hours=hours)},
    )
    entry = {"from_line": "reg1332", "to_number": "+79111234567", "text_to_pronounce": TEXT}
    async with running_worker(settings):
        await redis.xadd(Keys(prefix).intake, {"job": json.dumps(entry)})
        ledger = Producer(redis, settings=settings).ledger
        records = await wait_for(lambda: ledger.queued(start=0, count=10), what="the job in the queue")
    (record,) = records
    assert record.state == "scheduled"
    assert record.run_at == opening
    assert sandbox.calls() == []
    out = io.StringIO()
    await producer_cli.status(
        argparse.Namespace(id=record.job_id, json=True), settings=settings, redis=redis, out=out
    )
    view = json.loads(out.getvalue())
    assert view["run_at_local"] == opening.isoformat()
    assert datetime.fromisoformat(view["run_at"]) == opening
    assert view["timezone"] == "Asia/Tokyo"
    out = io.StringIO()
    await producer_cli.list_jobs(
        argparse.Namespace(scheduled=True, portal="default", line="reg1332", limit=10, json=True),
        settings=settings,
        redis=redis,
        out=out,
    )
    assert [v["job_id"] for v in json.loads(out.getvalue())] == [record.job_id]
    # nothing of the job has a TTL (and it has no arq job key that could lapse): however long the
    # workers are away, the job is still run (and, past its deadline, written `expired`)
    keys = Keys(prefix)
    assert await redis.pttl(keys.job(record.job_id)) == -1
    assert await redis.zscore(keys.queue, keys.jobs.member(record.job_id)) is not None
    assert not await redis.exists(keys.jobs.job(record.job_id))


async def test_line_hours_override_the_portals(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """A line with its own hours waits for them while another line of an open portal is called."""
    hours, opening = only_tomorrow(TOKYO)
    lines = {"reg1333": LineConfig(line_id="reg1333", hours=hours)}
    settings = make_settings(
        redis_url,
        prefix,
        {
            "default": sandbox_portal(
                portal.webhook_url("default"), timezone=TOKYO, hours=ALWAYS_OPEN, lines=lines
            )
        },
    )
    producer = Producer(redis, settings=settings)
    waiting = await producer.enqueue(from_line="reg1333", to_number="+79111234567", text_to_pronounce=TEXT)
    await producer.enqueue(from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT)
    assert waiting.run_at == opening
    async with running_worker(settings):
        await wait_for(lambda: _calls(sandbox), what="the open line's call")
    assert [c.params["FROM_LINE"] for c in sandbox.calls()] == ["reg1332"]


async def _calls(sandbox: Sandbox) -> int:
    return len(sandbox.calls())


async def test_public_holidays_from_the_country_code_are_closed(
    redis_url: str, prefix: str, redis: Redis
) -> None:
    """On 1 January with `holidays = "RU"` the job waits for the first working day after the holidays."""
    now = datetime(2027, 1, 1, 10, 0, tzinfo=MSK)
    daily = parse_hours(dict.fromkeys(DAY_KEYS, "09:00-18:00"), where="test")
    settings = make_settings(
        redis_url,
        prefix,
        {"default": sandbox_portal("http://127.0.0.1:9/rest/1/x/", timezone=MSK, hours=daily, holidays="RU")},
    )
    submitted = await Producer(redis, settings=settings, clock=lambda: now).enqueue(
        from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT
    )
    closed = holidays.country_holidays("RU", years=2027)
    first_open = next(d for d in (date(2027, 1, 1) + timedelta(days=n) for n in range(30)) if d not in closed)
    assert submitted.run_at == datetime.combine(first_open, datetime.min.time().replace(hour=9), tzinfo=MSK)
    assert first_open > date(2027, 1, 2)


async def test_deadline_before_next_opening_expires_at_once(
    redis_url: str, prefix: str, redis: Redis
) -> None:
    """A deadline earlier than the line's next opening ends the job `expired` on arrival, saying why."""
    now = datetime(2026, 11, 21, 20, 0, tzinfo=MSK)  # a Saturday evening
    weekdays = parse_hours(dict.fromkeys(DAY_KEYS[:5], "09:00-18:00"), where="test")
    settings = make_settings(
        redis_url,
        prefix,
        {"default": sandbox_portal("http://127.0.0.1:9/rest/1/x/", timezone=MSK, hours=weekdays)},
    )
    submitted = await Producer(redis, settings=settings, clock=lambda: now).enqueue(
        from_line="reg1332",
        to_number="+79111234567",
        text_to_pronounce=TEXT,
        deadline="2026-11-22T12:00:00+03:00",
    )
    assert submitted.status == "expired"
    assert submitted.error is not None and submitted.error.code == "DEADLINE_PASSED"
    assert "2026-11-23T09:00:00+03:00" in submitted.error.description
    outcomes = await redis.xrange(Keys(prefix).outcomes)
    assert json.loads(outcomes[0][1][b"outcome"])["status"] == "expired"


async def test_default_deadline_counts_from_the_first_opening(
    redis_url: str, prefix: str, redis: Redis
) -> None:
    """A Friday-evening request is still callable on Monday: its deadline counts from Monday's opening."""
    now = datetime(2026, 11, 20, 19, 0, tzinfo=MSK)  # Friday, after hours
    weekdays = parse_hours(dict.fromkeys(DAY_KEYS[:5], "09:00-18:00"), where="test")
    settings = make_settings(
        redis_url,
        prefix,
        {"default": sandbox_portal("http://127.0.0.1:9/rest/1/x/", timezone=MSK, hours=weekdays)},
    )
    submitted = await Producer(redis, settings=settings, clock=lambda: now).enqueue(
        from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT
    )
    record = await Producer(redis, settings=settings).status(submitted.job_id)
    assert record is not None
    assert submitted.run_at == datetime(2026, 11, 23, 9, 0, tzinfo=MSK)
    assert record.job.deadline_at == datetime(2026, 11, 24, 9, 0, tzinfo=MSK)


async def retry_once(redis: Redis, prefix: str, *, deadline: str | None) -> tuple[float | None, JobRecord]:
    """Run one job at 17:59 against a refused connection, with a one-minute backoff; return (delay, record)."""
    now = datetime(2026, 11, 23, 17, 59, tzinfo=MSK)  # Monday
    weekdays = parse_hours(dict.fromkeys(DAY_KEYS[:5], "09:00-18:00"), where="test")
    url = f"http://127.0.0.1:{free_port()}/rest/1/x/"
    settings = make_settings("unused", prefix, {"default": sandbox_portal(url, timezone=MSK, hours=weekdays)})
    producer = Producer(redis, settings=settings, clock=lambda: now)
    submitted = await producer.enqueue(
        from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT, deadline=deadline
    )
    ledger = Ledger(redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=100)
    async with aiohttp.ClientSession() as session:
        deps = Deps(
            settings=settings,
            ledger=ledger,
            session=session,
            limiter=RateLimiter(redis, keys=Keys(prefix)),
            auth=PortalAuth(redis, prefix=prefix, session=session),
            addresses=PortalAddresses(redis, Keys(prefix)),
            leases=AttemptLeases(ledger, timing=LeaseTiming()),
            clock=lambda: now,
            jitter=lambda: 1.0,
            retry_base_s=60.0,
            rate_limit=False,
        )
        delay = await run_job(deps, submitted.job_id)
    record = await ledger.read(submitted.job_id)
    assert record is not None
    return delay, record


async def test_a_retry_that_would_land_after_closing_runs_at_the_next_opening(
    redis_url: str, prefix: str, redis: Redis
) -> None:
    """A transient failure at 17:59 with a 1-minute backoff and an 18:00 close retries at 09:00 next day."""
    delay, record = await retry_once(redis, prefix, deadline=None)
    assert record.state == "retrying"
    assert record.run_at == datetime(2026, 11, 24, 9, 0, tzinfo=MSK)
    assert (
        delay
        == (
            datetime(2026, 11, 24, 9, 0, tzinfo=MSK) - datetime(2026, 11, 23, 17, 59, tzinfo=MSK)
        ).total_seconds()
    )


async def test_a_retry_past_the_deadline_expires(redis_url: str, prefix: str, redis: Redis) -> None:
    """The same failure with a deadline at 20:00 the same day ends `expired`, naming the last error."""
    delay, record = await retry_once(redis, prefix, deadline="2026-11-23T20:00:00+03:00")
    assert delay is None
    assert record.state == "expired"
    assert record.outcome is not None
    assert "cannot connect" in record.outcome["error"]["description"]


async def run_at_edge(redis: Redis, prefix: str, url: str, readings: list[datetime]) -> tuple[str, JobRecord]:
    """Run one job on weekdays 09:00-18:00 (MSK) with the clock reading ``readings`` in turn (the last
    one repeats); return (the job id, its record afterwards)."""
    weekdays = parse_hours(dict.fromkeys(DAY_KEYS[:5], "09:00-18:00"), where="test")
    settings = make_settings("unused", prefix, {"default": sandbox_portal(url, timezone=MSK, hours=weekdays)})
    opened = datetime(2026, 11, 23, 9, 0, tzinfo=MSK)
    producer = Producer(redis, settings=settings, clock=lambda: opened)
    submitted = await producer.enqueue(
        from_line="reg1332",
        to_number="+79111234567",
        text_to_pronounce=TEXT,
        deadline="2026-11-27T18:00:00+03:00",
    )
    clock = iter(readings)
    last = readings[-1]
    ledger = Ledger(redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=100)
    async with aiohttp.ClientSession() as session:
        deps = Deps(
            settings=settings,
            ledger=ledger,
            session=session,
            limiter=RateLimiter(redis, keys=Keys(prefix)),
            auth=PortalAuth(redis, prefix=prefix, session=session),
            addresses=PortalAddresses(redis, Keys(prefix)),
            leases=AttemptLeases(ledger, timing=LeaseTiming()),
            clock=lambda: next(clock, last),
            rate_limit=False,
        )
        await run_job(deps, submitted.job_id)
    record = await ledger.read(submitted.job_id)
    assert record is not None
    return submitted.job_id, record


async def test_a_line_that_closes_while_the_job_waits_for_its_slot_is_not_called(
    prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """Open when the job wakes (17:59:59.8), closed once START took its slot (18:00:00.2): no call; the
    attempt is recorded as not sent (it does not count) and the job waits for 09:00."""
    before = datetime(2026, 11, 23, 17, 59, 59, 800_000, tzinfo=MSK)  # Monday
    after = datetime(2026, 11, 23, 18, 0, 0, 200_000, tzinfo=MSK)
    _, record = await run_at_edge(redis, prefix, portal.webhook_url("default"), [before, after])
    assert sandbox.calls() == []
    assert (record.state, record.attempts) == ("retrying", 1)
    assert record.attempt_log[0]["counts"] is False
    assert record.run_at == datetime(2026, 11, 24, 9, 0, tzinfo=MSK)


async def test_a_job_woken_a_blink_before_opening_starts_at_the_opening(
    prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """Woken at 08:59:59.8, the job waits for 09:00 before its attempt starts (never early), then calls."""
    early = datetime(2026, 11, 23, 8, 59, 59, 800_000, tzinfo=MSK)
    opened = datetime(2026, 11, 23, 9, 0, 0, 10_000, tzinfo=MSK)
    _, record = await run_at_edge(redis, prefix, portal.webhook_url("default"), [early, opened])
    assert record.state == "succeeded"
    assert len(sandbox.calls()) == 1
    started = datetime.fromisoformat(record.attempt_log[0]["started_at"])
    assert started >= datetime(2026, 11, 23, 9, 0, tzinfo=MSK)


async def test_a_slow_redirect_past_the_deadline_sends_nothing_more(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """START inside the job's window; the portal's old address answers its 302 only after the job's
    deadline: the request is not sent again to the new address, and the job ends expired, no call."""
    slow_s = 2.0  # inside the request timeout (3 s in FAST)

    async def moved(request: web.Request) -> web.Response:
        await asyncio.sleep(slow_s)  # the old address, answering slowly
        raise web.HTTPFound(portal.base_url + request.path)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        old_url = portal.webhook_url("default").replace(portal.base_url, f"http://127.0.0.1:{port}")
        settings = make_settings(redis_url, prefix, {"default": sandbox_portal(old_url)})
        producer = Producer(redis, settings=settings)
        deadline = datetime.now(UTC) + timedelta(seconds=slow_s / 2)
        job = await producer.enqueue(
            from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT, deadline=deadline
        )
        async with running_worker(settings):
            record = await wait_for(
                lambda: _final(producer.ledger, job.job_id), timeout_s=20, what="the job's end"
            )
        assert record.state == "expired"
        assert sandbox.calls(executed_only=True) == []
    finally:
        await runner.cleanup()


async def _final(ledger: Ledger, job_id: str) -> JobRecord | None:
    record = await ledger.read(job_id)
    return record if record is not None and record.state in {"expired", "succeeded", "dead"} else None
