"""The dashboard's access rules, in process: login sets an HttpOnly SameSite=Strict session cookie that
is not the token; every state change needs the CSRF token and an operator; a read-only token sees pages
without buttons and is refused 403; numbers are masked on every page."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import io
import json
import re
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from structlog.testing import capture_logs

from producers.api import Producer
from producers.bulk import DASHBOARD_MAX_BYTES, DASHBOARD_MAX_ROWS
from producers.dashboard import plots
from producers.http.app import create_app
from schemas.config import ApiToken, Settings
from schemas.store.keys import Keys
from schemas.store.records import to_ms
from schemas.store.stats import minute_of
from tests.support.helpers import make_settings, sandbox_portal

OPERATOR = "operator-token-0123456789"
READER = "reader-token-0123456789ab"
NUMBER = "+79111234567"
Client = TestClient[web.Request, web.Application]


@pytest.fixture
def settings(redis_url: str, prefix: str) -> Settings:
    """One portal; a write token (operator) and a read token."""
    tokens = (
        ApiToken(name="ops", token=OPERATOR, access="write"),
        ApiToken(name="viewer", token=READER, access="read"),
    )
    portals = {"default": sandbox_portal("http://127.0.0.1:9/rest/1/x/")}
    return make_settings(redis_url, prefix, portals, named_tokens=tokens)


@contextlib.asynccontextmanager
async def browser(redis: Redis, settings: Settings) -> AsyncIterator[Client]:
    """A client with a cookie jar, on a real loopback server."""
    async with TestClient(TestServer(create_app(redis=redis, settings=settings))) as client:
        yield client


async def log_in(client: Client, token: str) -> str:
    """Log in; return the CSRF token of the overview page."""
    async with client.post("/dashboard/login", data={"token": token}, allow_redirects=False) as resp:
        assert resp.status == 303
        cookie = resp.headers["Set-Cookie"]
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/dashboard" in cookie
        assert token not in cookie
    return await csrf_of(client, "/dashboard/")


async def csrf_of(client: Client, path: str) -> str:
    """The CSRF token in a page's forms."""
    async with client.get(path) as resp:
        assert resp.status == 200
        match = re.search(r'name="csrf" value="([^"]+)"', await resp.text())
    assert match
    return match.group(1)


async def state_of(redis: Redis, prefix: str, job_id: str) -> bytes | None:
    """The job's state as stored."""
    return await cast(Awaitable[bytes | None], redis.hget(Keys(prefix).job(job_id), "state"))


async def scheduled_job(redis: Redis, settings: Settings) -> str:
    """A job waiting a month."""
    producer = Producer(redis, settings=settings)
    submitted = await producer.enqueue(
        from_line="reg1332",
        to_number=NUMBER,
        text_to_pronounce="Hello",
        not_before=datetime.now(UTC) + timedelta(days=30),
    )
    return submitted.job_id


async def test_without_session_pages_go_to_login(redis: Redis, settings: Settings) -> None:
    """A page without a session redirects to the login form; a wrong token is 401 and no cookie."""
    async with browser(redis, settings) as client:
        async with client.get("/dashboard/scheduled", allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (303, "/dashboard/login")
        async with client.post("/dashboard/login", data={"token": "wrong-token-000000"}) as resp:
            assert resp.status == 401 and "Set-Cookie" not in resp.headers


async def test_operator_cancels_with_csrf_only(redis: Redis, settings: Settings, prefix: str) -> None:
    """A cancel without the CSRF token is 403 and changes nothing; with it, the job is cancelled and
    the action is logged with the token's name, never the token."""
    job_id = await scheduled_job(redis, settings)
    async with browser(redis, settings) as client:
        csrf = await log_in(client, OPERATOR)
        async with client.post(f"/dashboard/jobs/{job_id}/cancel", data={}) as resp:
            assert resp.status == 403
        assert await state_of(redis, prefix, job_id) == b"scheduled"
        with capture_logs() as logs:
            async with client.post(f"/dashboard/jobs/{job_id}/cancel", data={"csrf": csrf}) as resp:
                assert resp.status == 200
        assert await state_of(redis, prefix, job_id) == b"cancelled"
    (event,) = [e for e in logs if e["event"] == "dashboard.cancel"]
    assert event["caller"] == "ops" and OPERATOR not in repr(logs)


async def test_read_only_sees_no_buttons_and_is_refused(
    redis: Redis, settings: Settings, prefix: str
) -> None:
    """A read token sees the scheduled list (number masked) with no action buttons, and every POST that
    changes something is 403, even with its own CSRF token."""
    job_id = await scheduled_job(redis, settings)
    async with browser(redis, settings) as client:
        csrf = await log_in(client, READER)
        async with client.get("/dashboard/scheduled") as resp:
            page = await resp.text()
        assert job_id in page and NUMBER not in page and "+7911***4567" in page
        assert 'name="cancel"' not in page and "/dashboard/import" not in page
        posts: list[tuple[str, dict[str, Any]]] = [
            (f"/dashboard/jobs/{job_id}/cancel", {"csrf": csrf}),
            (f"/dashboard/jobs/{job_id}/reschedule", {"csrf": csrf, "at": "2030-02-01T10:00"}),
            (f"/dashboard/dead/{job_id}/replay", {"csrf": csrf}),
            (f"/dashboard/dead/{job_id}/purge", {"csrf": csrf}),
            ("/dashboard/new", {"csrf": csrf, "from_line": "L", "to_number": NUMBER}),
        ]
        for path, data in posts:
            async with client.post(path, data=data) as resp:
                assert resp.status == 403, path
    assert await state_of(redis, prefix, job_id) == b"scheduled"


async def test_reschedule_moves_the_job(redis: Redis, settings: Settings, prefix: str) -> None:
    """ "Run at another time" moves run_at in the record, the scheduled index and arq's queue."""
    job_id = await scheduled_job(redis, settings)
    keys = Keys(prefix)
    # within the job's deadline (a day after its first run)
    target = (datetime.now(UTC) + timedelta(days=30, hours=6)).replace(second=0, microsecond=0)
    async with browser(redis, settings) as client:
        csrf = await log_in(client, OPERATOR)
        data = {"csrf": csrf, "at": target.strftime("%Y-%m-%dT%H:%M")}
        async with client.post(f"/dashboard/jobs/{job_id}/reschedule", data=data) as resp:
            assert resp.status == 200
            assert "runs at" in await resp.text(), str(resp.url) + str(resp.history)
    expected = int(target.timestamp() * 1000)
    assert await redis.zscore(keys.scheduled("default"), job_id) == expected
    assert await redis.zscore(keys.queue, keys.jobs.member(job_id)) == expected
    record = await Producer(redis, settings=settings).status(job_id)
    assert record is not None and record.job.not_before == target.isoformat()


async def test_logout_ends_the_session(redis: Redis, settings: Settings, prefix: str) -> None:
    """Logout deletes the session in Redis: the same cookie no longer opens a page."""
    async with browser(redis, settings) as client:
        csrf = await log_in(client, OPERATOR)
        assert await redis.keys(f"{prefix}:session:*")
        async with client.post("/dashboard/logout", data={"csrf": csrf}, allow_redirects=False) as resp:
            assert resp.status == 303
        assert await redis.keys(f"{prefix}:session:*") == []


def test_plots_escape_and_scale() -> None:
    """The SVG plots draw one bar per minute with a count and escape their labels."""
    svg = plots.stacked_bars([{"succeeded": 2}, {}, {"dead": 1, "succeeded": 1}], title="<a>")
    assert svg.count("<rect") == 3 + len(plots.STATUS_COLOURS) and "&lt;a&gt;" in svg
    assert "<polyline" in plots.line([1.0, None, 3.0], title="t", unit="ms")


async def test_overview_plots_the_reached_ratio(redis: Redis, settings: Settings, prefix: str) -> None:
    """The overview draws the reached ratio from the minute's counted call results (3 of 4 reached)."""
    minute = minute_of(to_ms(datetime.now(UTC)))
    stats = Keys(prefix).minute_stats("default", minute)
    await cast(Awaitable[int], redis.hset(stats, mapping={"call:connected": 3, "call:busy": 1}))
    async with browser(redis, settings) as client:
        await log_in(client, READER)
        async with client.get("/dashboard/") as resp:
            page = await resp.text()
    assert "reached ratio per minute" in page
    assert "% reached" in page and "not recorded yet" not in page
    assert re.search(r'<circle cx="[\d.]+" cy="[\d.]+" r="2.5" fill="#2e7d32"/>', page), "a dot at 75 %"


async def test_number_search_finds_only_what_the_mask_shows(redis: Redis, settings: Settings) -> None:
    """The scheduled list's text filter finds a job by its number's last 4 digits or its whole mask, but
    never by a longer run of its digits (a read-only token would recover the number one digit at a time),
    nor by a number or a secret inside its text or metadata (the page shows them masked)."""
    producer = Producer(redis, settings=settings)
    submitted = await producer.enqueue(
        from_line="reg1332",
        to_number=NUMBER,
        text_to_pronounce="Call back +79997654321 please",
        metadata={"note": f"token {OPERATOR}"},
        not_before=datetime.now(UTC) + timedelta(days=30),
    )
    job_id = submitted.job_id

    async def found(q: str) -> bool:
        async with client.get("/dashboard/scheduled", params={"q": q}) as resp:
            assert resp.status == 200
            return job_id in await resp.text()

    async with browser(redis, settings) as client:
        await log_in(client, READER)
        assert await found("4567") and await found("+7911***4567") and await found("please")
        for probe in (
            "14567",
            "234567",
            "79111234567",
            NUMBER,
            "7654321",
            "+7999765",
            OPERATOR[:12],
            "0123456",
        ):
            assert not await found(probe), probe


async def test_an_upload_over_the_dashboard_caps_is_refused(redis: Redis, settings: Settings) -> None:
    """A file with more rows, or more bytes, than the dashboard imports at once is refused with 413 and
    a message that says the limit and the way round it; nothing is stored."""
    rows = b"from_line,to_number\n" + b"L,+79111234567\n" * (DASHBOARD_MAX_ROWS + 1)
    async with browser(redis, settings) as client:
        csrf = await log_in(client, OPERATOR)
        for data, said in (
            (rows, f"at most {DASHBOARD_MAX_ROWS} are imported at once"),
            (b"x" * (DASHBOARD_MAX_BYTES + 128 * 1024), "the most the dashboard imports at once"),
        ):
            form = aiohttp.FormData({"csrf": csrf, "step": "preview"})
            form.add_field("file", io.BytesIO(data), filename="big.csv", content_type="text/csv")
            async with client.post("/dashboard/import", data=form) as resp:
                page = await resp.text()
                assert resp.status == 413 and said in page and "callq enqueue --file" in page
        assert await redis.keys(f"{settings.key_prefix}:upload:*") == []


async def upload(client: Client, csrf: str, data: bytes, filename: str) -> tuple[int, str]:
    """Preview a file on the import page: the status and the page."""
    form = aiohttp.FormData({"csrf": csrf, "step": "preview"})
    form.add_field("file", io.BytesIO(data), filename=filename, content_type="application/octet-stream")
    async with client.post("/dashboard/import", data=form) as resp:
        return resp.status, await resp.text()


async def test_an_import_is_confirmed_in_the_format_it_was_previewed(
    redis: Redis, settings: Settings, prefix: str
) -> None:
    """A ``.jsonl`` whose first line is no ``{`` is read as JSONL by the preview and by the confirmation
    alike (it was re-read as CSV: a 500, nothing queued)."""
    line = {"from_line": "reg1332", "to_number": NUMBER, "text_to_pronounce": "Hi"}
    data = b"[1]\n" + json.dumps(line).encode() + b"\n"
    async with browser(redis, settings) as client:
        csrf = await log_in(client, OPERATOR)
        status, page = await upload(client, csrf, data, "calls.jsonl")
        assert status == 200
        match = re.search(r'name="upload_id" value="([^"]+)"', page)
        assert match
        form = {"csrf": csrf, "step": "confirm", "upload_id": match.group(1)}
        async with client.post("/dashboard/import", data=form) as resp:
            assert resp.status == 200, await resp.text()
            page = await resp.text()
    assert 'data-count="queued">1<' in page and 'data-count="rejected">1<' in page
    assert await redis.zcard(Keys(prefix).queue) == 1


async def test_a_cell_over_the_csv_limit_is_a_422(redis: Redis, settings: Settings) -> None:
    """A CSV cell larger than the csv module's limit is a file that cannot be read: 422 with why."""
    data = b"from_line,to_number,text_to_pronounce\nL,+79111234567," + b"a" * 200_000 + b"\n"
    async with browser(redis, settings) as client:
        csrf = await log_in(client, OPERATOR)
        status, page = await upload(client, csrf, data, "big.csv")
    assert status == 422 and "cannot be read as CSV" in page


@pytest.mark.parametrize("last", ["not-an-id", "1-x", "-1", "99999999999999999999999", "1-2-3"])
async def test_a_garbage_last_event_id_follows_from_now(
    redis: Redis, settings: Settings, prefix: str, last: str
) -> None:
    """The live outcomes' stream takes a ``Last-Event-ID`` that is no stream id as "from now": 200, and
    the next outcome arrives (it was a 500 written into the 200 stream)."""
    async with browser(redis, settings) as client:
        await log_in(client, READER)
        async with client.get("/dashboard/outcomes/stream", headers={"Last-Event-ID": last}) as resp:
            assert resp.status == 200
            assert await resp.content.readuntil(b": ready\n\n")
            outcome = {"job_id": "j-sse", "status": "succeeded", "portal": "default"}
            await redis.xadd(Keys(prefix).outcomes, {"outcome": json.dumps(outcome)})
            async with asyncio.timeout(5):
                event = await resp.content.readuntil(b"\n\n")
            assert b"event: outcome" in event and b"j-sse" in event


async def test_pages_mask_numbers_and_secrets_in_every_field(redis: Redis, settings: Settings) -> None:
    """A number inside the text to pronounce, the job's own number in another spelling, and a configured
    secret (an API token) in the metadata are masked on the job page and the scheduled list, as
    ``callq status --json`` masks them."""
    producer = Producer(redis, settings=settings)
    submitted = await producer.enqueue(
        from_line="reg1332",
        to_number=NUMBER,
        text_to_pronounce="Call +79997654321 or 8 911 123 45 67",
        metadata={"token": OPERATOR, "note": f"reader {READER}"},
        not_before=datetime.now(UTC) + timedelta(days=30),
    )
    async with browser(redis, settings) as client:
        await log_in(client, READER)
        pages = []
        for path in (f"/dashboard/jobs/{submitted.job_id}", "/dashboard/scheduled"):
            async with client.get(path) as resp:
                assert resp.status == 200
                pages.append(await resp.text())
    for page in pages:
        for shown in ("79997654321", "9997654321", "911 123 45 67", NUMBER, OPERATOR, READER):
            assert shown not in page, shown
        assert "Call " in page
    assert "***" in pages[0] and '"token"' in pages[0].replace("&#34;", '"')


@pytest.mark.parametrize("rotated", [True, False], ids=["rotated", "removed"])
async def test_a_rotated_or_removed_token_ends_its_sessions(
    redis: Redis, settings: Settings, prefix: str, rotated: bool
) -> None:
    """A session is bound to the token's value (a keyed fingerprint, never the token): once ``ops`` has
    another value (or is gone), its old session's cookie opens nothing and the session is deleted."""
    async with browser(redis, settings) as client:
        await log_in(client, OPERATOR)
        cookie = next(c.value for c in client.session.cookie_jar if c.key == "callq_session")
    (key,) = await redis.keys(f"{prefix}:session:*")
    stored = await redis.get(key)
    assert stored is not None and OPERATOR.encode() not in stored
    tokens = (
        (ApiToken(name="ops", token="operator-token-ROTATED-99", access="write"),) if rotated else ()
    ) + (ApiToken(name="viewer", token=READER, access="read"),)
    changed = dataclasses.replace(settings, named_tokens=tokens)
    async with browser(redis, changed) as client:
        headers = {"Cookie": f"callq_session={cookie}"}
        async with client.get("/dashboard/scheduled", headers=headers, allow_redirects=False) as resp:
            assert (resp.status, resp.headers["Location"]) == (303, "/dashboard/login")
    assert await redis.keys(f"{prefix}:session:*") == []
    async with browser(redis, settings) as client:  # the control: the same token keeps its session
        await log_in(client, OPERATOR)
        cookie = next(c.value for c in client.session.cookie_jar if c.key == "callq_session")
        async with client.get(
            "/dashboard/scheduled", headers={"Cookie": f"callq_session={cookie}"}, allow_redirects=False
        ) as resp:
            assert resp.status == 200


async def test_a_call_result_is_an_update_not_a_second_outcome(
    redis: Redis, settings: Settings, prefix: str
) -> None:
    """The live outcomes' stream sends a job's outcome as ``outcome`` and its call result (which carries
    the outcome again, with ``call``) as ``call_result``: the page updates the job's row with it
    instead of showing the job twice; in the backlog and live alike."""
    outcomes = Keys(prefix).outcomes
    outcome = {"job_id": "j-call", "status": "succeeded", "portal": "default"}
    await redis.xadd(outcomes, {"outcome": json.dumps(outcome)})
    call = {**outcome, "call": {"result": "busy", "ended_by": "cancelled"}}
    await redis.xadd(outcomes, {"kind": "call_result", "outcome": json.dumps(call), "call_result": "{}"})
    async with browser(redis, settings) as client:
        await log_in(client, READER)
        async with client.get("/dashboard/outcomes/stream") as resp:
            backlog = await resp.content.readuntil(b": ready\n\n")
            await redis.xadd(
                outcomes, {"kind": "call_result", "outcome": json.dumps(call), "call_result": "{}"}
            )
            async with asyncio.timeout(5):
                live = await resp.content.readuntil(b"\n\n")
    assert backlog.count(b"event: outcome\n") == 1 and backlog.count(b"event: call_result\n") == 1
    assert live.startswith(b"id: ") and b"event: call_result\n" in live


async def test_the_access_log_names_the_dashboard_s_token(redis: Redis, settings: Settings) -> None:
    """A dashboard request's access log line names its session's token (it said ``caller=None``)."""
    async with browser(redis, settings) as client:
        with capture_logs() as logs:
            await log_in(client, READER)
            async with client.get("/dashboard/scheduled") as resp:
                assert resp.status == 200
    callers = {(e["path"], e["caller"]) for e in logs if e["event"] == "http.request"}
    assert ("/dashboard/scheduled", "viewer") in callers and ("/dashboard/login", "viewer") in callers
