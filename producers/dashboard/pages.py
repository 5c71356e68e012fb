"""The dashboard's pages (GET): overview, scheduled callbacks, one job, dead letters, live outcomes,
the forms to schedule one callback and to import a file. Numbers are masked (the templates' ``masked``
filter; every other field of a job through :func:`producers.views.shown_view`, the masking of
``callq status --json``: numbers, the job's own in every spelling, and the configured secrets)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from aiohttp import web

from producers.dashboard import plots, queries
from producers.dashboard.app import DASHBOARD, SESSION, Dashboard, render, require_session
from producers.dashboard.auth import current
from producers.views import job_numbers, shown_text_to_pronounce, shown_view
from schemas.store.records import to_ms
from schemas.store.stats import reached_ratio

PAGE = 50


@require_session
async def overview(request: web.Request) -> web.Response:
    """Every visible portal: bucket, pause or halt, counts, next openings, the last hour as plots."""
    dash, session = request.app[DASHBOARD], request[SESSION]
    now = dash.producer.clock()
    views = []
    for name, portal in dash.settings.portals.items():
        if not session.caller.may_see(name):
            continue
        o = await queries.overview(dash.redis, dash.keys, portal, now=now)
        views.append(
            {
                "o": o,
                "tz": portal.timezone,
                "outcomes_svg": plots.stacked_bars(o.minutes, title=f"{name}: outcomes per minute"),
                "latency_svg": plots.line(
                    o.latency_p95_ms, title=f"{name}: request latency p95 per minute", unit="p95 ms"
                ),
                "latency_avg_svg": plots.line(
                    o.latency_avg_ms, title=f"{name}: mean request latency", unit="mean ms", colour="#6a1b9a"
                ),
                "reached_svg": plots.line(
                    [None if r is None else 100 * r for r in map(reached_ratio, o.minutes)],
                    title=f"{name}: reached ratio per minute (connected of the calls that ended)",
                    unit="% reached",
                    colour="#2e7d32",
                ),
            }
        )
    return render(request, "overview.html", views=views, now=now)


def _portal(request: web.Request, dash: Dashboard) -> str | None:
    session = request[SESSION]
    visible = [name for name in dash.settings.portals if session.caller.may_see(name)]
    asked = request.query.get("portal")
    return asked if asked in visible else (visible[0] if visible else None)


def _when(text: str | None, tz: ZoneInfo) -> int | None:
    """A datetime-local field (the portal's time) as unix ms."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return to_ms(moment if moment.tzinfo else moment.replace(tzinfo=tz))


@require_session
async def scheduled(request: web.Request) -> web.Response:
    """The waiting jobs of one portal in order of run_at: time range, line and text filters, pages."""
    dash = request.app[DASHBOARD]
    portal = _portal(request, dash)
    if portal is None:
        return render(request, "scheduled.html", page=None, f=None, q=request.query, tz=None)
    tz = dash.settings.portals[portal].timezone
    f = queries.ScheduledFilter(
        portal=portal,
        start_ms=_when(request.query.get("from"), tz),
        end_ms=_when(request.query.get("to"), tz),
        line=request.query.get("line") or None,
        text=(request.query.get("q") or "").strip()[:100] or None,
    )
    try:
        cursor = max(int(request.query.get("cursor", "0")), 0)
    except ValueError:
        cursor = 0
    page = await queries.scheduled(dash.producer.ledger, f, cursor=cursor, limit=PAGE, redactor=dash.redactor)
    texts = {r.job_id: shown_text_to_pronounce(r, redactor=dash.redactor)[:60] for r in page.records}
    return render(
        request, "scheduled.html", page=page, f=f, q=request.query, tz=tz, cursor=cursor, texts=texts
    )


@require_session
async def job(request: web.Request) -> web.Response:
    """One job: its record, attempts and outcome (call result once recorded)."""
    dash, session = request.app[DASHBOARD], request[SESSION]
    record = await dash.producer.ledger.read(request.match_info["id"][:200])
    if record is None or not session.caller.may_see(record.job.portal):
        return render(request, "missing.html", status=404)
    view = shown_view(record, settings=dash.settings, redactor=dash.redactor)
    portal = dash.settings.portals.get(record.job.portal)
    tz = portal.timezone if portal else None
    return render(request, "job.html", record=record, view=view, tz=tz)


@require_session
async def dead(request: web.Request) -> web.Response:
    """The portal's dead jobs, newest first, with replay and purge."""
    dash = request.app[DASHBOARD]
    portal = _portal(request, dash)
    try:
        offset = max(int(request.query.get("offset", "0")), 0)
    except ValueError:
        offset = 0
    records, total = (
        await queries.dead_page(dash.producer.ledger, portal, offset=offset, limit=PAGE)
        if portal
        else ([], 0)
    )
    errors = {
        r.job_id: dash.redactor.value((r.outcome or {}).get("error") or {}, job_numbers(r)) for r in records
    }
    return render(
        request,
        "dead.html",
        portal=portal,
        records=records,
        total=total,
        offset=offset,
        page=PAGE,
        errors=errors,
    )


@require_session
async def outcomes(request: web.Request) -> web.Response:
    """Recent outcomes; the page's script appends new ones from the event stream."""
    return render(request, "outcomes.html")


@require_session
async def new_form(request: web.Request) -> web.Response:
    """The form to schedule one callback (operators only see it)."""
    return render(request, "new.html", result=None, form={})


@require_session
async def import_form(request: web.Request) -> web.Response:
    """The form to upload a CSV or JSONL file."""
    return render(request, "import.html", summary=None, upload_id=None, problem=None, done=False)


async def login_form(request: web.Request) -> web.Response:
    """The login form (straight to the overview with a live session)."""
    dash = request.app[DASHBOARD]
    if await current(request, redis=dash.redis, keys=dash.keys) is not None:
        return web.Response(status=303, headers={"Location": "/dashboard/"})
    return render(request, "login.html", failed=False)
