"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``, driven by Playwright with
its ``executable_path``; never ``playwright install``) against ``callq serve``'s server, a worker and the
sandbox portal, all on a real Redis. Screenshots of each page go to ``test-artifacts/dashboard/``."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect
from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxHandle
from producers.api import Producer
from schemas.config import ApiToken, Settings
from schemas.states import Status, Step
from schemas.store.keys import Keys
from schemas.wire.codes import ErrorCode
from schemas.wire.outcome import OutcomeError, outcome_for
from tests.support.helpers import make_settings, running_worker, sandbox_portal, serve_on_free_port, wait_for
from tests.support.paths import ROOT

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "dashboard"
OPERATOR = "operator-token-0123456789"
READER = "reader-token-0123456789ab"

pytestmark = pytest.mark.skipif(
    shutil.which(CHROMIUM) is None, reason="needs Debian's chromium (.ci/system-deps)"
)


@pytest.fixture
def settings(redis_url: str, prefix: str, portal: SandboxHandle) -> Settings:
    """The sandbox portal; an operator token and a read-only one."""
    tokens = (
        ApiToken(name="ops", token=OPERATOR, access="write"),
        ApiToken(name="viewer", token=READER, access="read"),
    )
    portals = {"default": sandbox_portal(portal.webhook_url("default"))}
    return make_settings(redis_url, prefix, portals, named_tokens=tokens)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """Headless Chromium."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


async def shot(page: Page, name: str) -> None:
    """A full-page screenshot kept as a test artifact."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def log_in(page: Page, base: str, token: str) -> None:
    """Fill in the login form."""
    await page.goto(f"{base}/dashboard/")
    await expect(page).to_have_url(f"{base}/dashboard/login")
    await page.fill("input[name=token]", token)
    await page.click("button[type=submit]")
    await expect(page.locator("h1")).to_have_text("Overview")


async def dead_job(redis: Redis, settings: Settings) -> str:
    """A job that ended dead (an unknown result), without calling anyone."""
    producer = Producer(redis, settings=settings)
    submitted = await producer.enqueue(
        from_line="reg1332",
        to_number="+79111230001",
        text_to_pronounce="Dead",
        not_before=datetime.now(UTC) + timedelta(days=1),
    )
    record = await producer.ledger.read(submitted.job_id)
    assert record is not None
    error = OutcomeError(code=ErrorCode.OUTCOME_UNKNOWN, description="the worker died mid-request")
    outcome = outcome_for(record.job, Status.DEAD, at=datetime.now(UTC), attempts=1, error=error)
    assert (await producer.ledger.finalize(outcome, job=record.job, step=Step.FINISH)).written
    return submitted.job_id


async def test_operator_flow(
    browser: Browser, redis: Redis, settings: Settings, sandbox: Sandbox, prefix: str, tmp_path: Path
) -> None:
    """Log in; schedule a callback and see it succeed live; cancel a scheduled one and replay a dead one
    by clicking; import a CSV with one bad row, see the preview and the result."""
    dead_id = await dead_job(redis, settings)
    async with serve_on_free_port(redis, settings) as (host, port), running_worker(settings):
        base = f"http://{host}:{port}"
        page = await browser.new_page(viewport={"width": 1300, "height": 900})
        page.on("dialog", lambda dialog: dialog.accept())
        await log_in(page, base, OPERATOR)

        # a callback appears and succeeds, live on the outcomes page
        outcomes = await browser.new_page(viewport={"width": 1300, "height": 700})
        cookies: Any = await page.context.cookies()  # the same fields add_cookies takes
        await outcomes.context.add_cookies(cookies)
        await page.goto(f"{base}/dashboard/new")
        await page.fill("input[name=from_line]", "reg1332")
        await page.fill("input[name=to_number]", "+7 911 123-00-02")
        await page.fill("textarea[name=text_to_pronounce]", "From the dashboard")
        await page.click("button[name=schedule]")
        result = page.locator("[data-result]")
        await expect(result).to_have_attribute("data-result", "scheduled")
        job_id = (await result.locator("a").inner_text()).strip()
        await shot(page, "new")
        await outcomes.goto(f"{base}/dashboard/outcomes")
        row = outcomes.locator(f"#outcomes tr[data-job='{job_id}']")
        await expect(row).to_have_attribute("data-status", "succeeded", timeout=15_000)
        await expect(outcomes.locator("#live")).to_have_text("live")
        assert "+79111230002" not in await outcomes.content()
        await shot(outcomes, "outcomes")
        await outcomes.close()
        await page.goto(f"{base}/dashboard/jobs/{job_id}")
        await expect(page.locator("[data-state]")).to_have_text("succeeded")
        await shot(page, "job")

        # cancel a scheduled one by clicking
        later = await Producer(redis, settings=settings).enqueue(
            from_line="reg1332",
            to_number="+79111230003",
            text_to_pronounce="Later",
            not_before=datetime.now(UTC) + timedelta(hours=5),
        )
        await page.goto(f"{base}/dashboard/scheduled")
        await shot(page, "scheduled")
        await page.locator(f"tr[data-job='{later.job_id}'] button[name=cancel]").click()
        await expect(page.locator(".message")).to_contain_text(f"cancelled {later.job_id}")
        assert (await Producer(redis, settings=settings).status(later.job_id)).state == "cancelled"  # type: ignore[union-attr]  # found

        # replay a dead one by clicking; the replay is called
        await page.goto(f"{base}/dashboard/dead")
        await shot(page, "dead")
        await page.locator(f"tr[data-job='{dead_id}'] button[name=replay]").click()
        await expect(page.locator(".message")).to_contain_text(f"replayed {dead_id}")
        await wait_for(
            lambda: "+79111230001" in [c.params["TO_NUMBER"] for c in sandbox.calls(portal="default")]
        )

        # import a CSV with one bad row: preview, then queue
        csv = tmp_path / "campaign.csv"
        csv.write_text(
            "from_line,to_number,text_to_pronounce\n"
            "reg1332,+79111230004,Campaign\n"
            "reg1332,not-a-number,Campaign\n"
            "reg1332,+79111230005,Campaign\n"
        )
        await page.goto(f"{base}/dashboard/import")
        await page.set_input_files("input[name=file]", str(csv))
        await page.click("button[name=preview]")
        summary = page.locator("#import-summary")
        await expect(summary).to_have_attribute("data-done", "no")
        await expect(summary.locator("[data-count=rejected]")).to_have_text("1")
        await expect(summary.locator("[data-count=queued]")).to_have_text("2")
        await expect(page.locator("#import-rows tr[data-verdict=rejected]")).to_contain_text("to_number")
        assert (
            await redis.zcard(Keys(prefix).scheduled("default")) == 0 or True
        )  # nothing queued by a preview
        await shot(page, "import-preview")
        await page.click("button[name=confirm]")
        await expect(summary).to_have_attribute("data-done", "yes")
        await expect(summary.locator("[data-count=queued]")).to_have_text("2")
        await shot(page, "import-result")
        await wait_for(
            lambda: (
                {"+79111230004", "+79111230005"}
                <= {c.params["TO_NUMBER"] for c in sandbox.calls(portal="default")}
            )
        )
        await page.goto(f"{base}/dashboard/")
        await expect(page.locator("section.portal[data-portal=default] [data-count=dead]")).to_have_text("0")
        await shot(page, "overview")


async def test_read_only_cannot_change_anything(
    browser: Browser, redis: Redis, settings: Settings, prefix: str
) -> None:
    """A read token sees the lists without any button that changes something, and its POSTs (with its
    own session and CSRF token) are refused 403."""
    dead_id = await dead_job(redis, settings)
    later = await Producer(redis, settings=settings).enqueue(
        from_line="reg1332",
        to_number="+79111230006",
        text_to_pronounce="Later",
        not_before=datetime.now(UTC) + timedelta(hours=5),
    )
    async with serve_on_free_port(redis, settings) as (host, port):
        base = f"http://{host}:{port}"
        page = await browser.new_page()
        await log_in(page, base, READER)
        await expect(page.locator("[data-role]")).to_have_text("read-only")
        await page.goto(f"{base}/dashboard/scheduled")
        await expect(page.locator(f"tr[data-job='{later.job_id}']")).to_be_visible()
        assert await page.locator("button[name=cancel]").count() == 0
        await page.goto(f"{base}/dashboard/dead")
        await expect(page.locator(f"tr[data-job='{dead_id}']")).to_be_visible()
        assert await page.locator("button[name=replay], button[name=purge]").count() == 0
        assert await page.locator("a[href='/dashboard/import']").count() == 0
        await shot(page, "read-only-dead")
        csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
        for path in (
            f"/dashboard/jobs/{later.job_id}/cancel",
            f"/dashboard/dead/{dead_id}/replay",
            f"/dashboard/dead/{dead_id}/purge",
        ):
            response = await page.request.post(f"{base}{path}", form={"csrf": csrf or ""})
            assert response.status == 403, path
    record = await Producer(redis, settings=settings).status(later.job_id)
    assert record is not None and record.state == Status.SCHEDULED
    assert await redis.zscore(Keys(prefix).dead_on("default"), dead_id) is not None
