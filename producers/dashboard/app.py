"""The dashboard's wiring: what its handlers share, the templates, the routes, and the login wall.

:func:`add_dashboard` mounts it on ``callq serve``'s application (:func:`producers.http.app.create_app`).
Its pages are outside the bearer-token guard (a browser has no bearer header): each handler asks
:func:`require_session`, which sends a browser without a session to the login form.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import jinja2
from aiohttp import web
from redis.asyncio import Redis

from producers.api import Producer
from producers.dashboard.auth import Session, current
from producers.deadletters import DeadLetters
from producers.http.guards import CALLER
from schemas.config import Settings
from schemas.policy.redact import Redactor, known_secrets, mask_number
from schemas.store.keys import Keys

BASE = "/dashboard"


@dataclass(frozen=True)
class Dashboard:
    """What every handler uses."""

    redis: Redis
    settings: Settings
    producer: Producer
    dead_letters: DeadLetters
    keys: Keys
    templates: jinja2.Environment
    redactor: Redactor
    """Masks what pages show: numbers, and the configured secrets (:func:`schemas.policy.redact.known_secrets`),
    as ``callq status --json`` does."""
    closing: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the server shuts down: the live streams end (they would hold the shutdown up)."""


DASHBOARD = web.AppKey("callq.dashboard", Dashboard)
SESSION = web.RequestKey("callq.dashboard.session", Session)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def templates() -> jinja2.Environment:
    """The templates shipped in the package, autoescaped."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("producers.dashboard", "templates"),
        autoescape=True,
        # an attempt entry or an outcome lacks members that do not apply (a success has no code)
        undefined=jinja2.ChainableUndefined,
    )
    env.filters["masked"] = lambda number: mask_number(number) if number else ""
    env.filters["local"] = _local
    env.filters["urlencode_without"] = _urlencode_without
    return env


def _urlencode_without(query: Mapping[str, str], name: str) -> str:
    """The page's query string without ``name`` (and without a shown message)."""
    return urlencode([(k, v) for k, v in query.items() if k not in (name, "msg")])


def _local(moment: datetime | None, tz: ZoneInfo | str | None = None) -> str:
    if moment is None:
        return "—"
    zone = ZoneInfo(tz) if isinstance(tz, str) else tz
    return (moment.astimezone(zone) if zone else moment).strftime("%Y-%m-%d %H:%M:%S %Z")


def redirect(location: str) -> web.Response:
    """303 See Other (returned, not raised: the API's middleware answers raised ones as JSON)."""
    return web.Response(status=303, headers={"Location": location})


def require_session(handler: Handler) -> Handler:
    """``handler`` for a logged-in browser; without a session a GET goes to the login form and
    anything else gets ``401``."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        dash = request.app[DASHBOARD]
        session = await current(request, redis=dash.redis, keys=dash.keys)
        if session is None:
            if request.method == "GET":
                return redirect(f"{BASE}/login")
            return web.Response(status=401, text="log in first", content_type="text/plain")
        request[SESSION] = session
        request[CALLER] = session.caller  # the access log names the token
        return await handler(request)

    return wrapped


def render(request: web.Request, template: str, *, status: int = 200, **context: Any) -> web.Response:
    """A page: ``template`` with the session, the visible portals and ``context``."""
    dash = request.app[DASHBOARD]
    session = request.get(SESSION)
    portals = [name for name in dash.settings.portals if session is None or session.caller.may_see(name)]
    html = dash.templates.get_template(template).render(
        session=session, portals=portals, base=BASE, message=request.query.get("msg"), **context
    )
    response = web.Response(text=html, content_type="text/html", status=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'"
    )
    return response


def add_dashboard(app: web.Application, *, redis: Redis, settings: Settings, producer: Producer) -> None:
    """Mount the dashboard's routes on ``app`` under ``/dashboard``."""
    from producers.dashboard import actions, pages, stream

    app[DASHBOARD] = Dashboard(
        redis=redis,
        settings=settings,
        producer=producer,
        dead_letters=DeadLetters(producer),
        keys=Keys(settings.key_prefix),
        templates=templates(),
        redactor=Redactor(known_secrets(settings)),
    )
    app.on_shutdown.append(_close_streams)
    r = app.router
    r.add_get(BASE, _to_overview, allow_head=False)
    r.add_get(f"{BASE}/", pages.overview, allow_head=False)
    r.add_get(f"{BASE}/login", pages.login_form, allow_head=False)
    r.add_post(f"{BASE}/login", actions.login)
    r.add_post(f"{BASE}/logout", actions.logout)
    r.add_get(f"{BASE}/scheduled", pages.scheduled, allow_head=False)
    r.add_get(f"{BASE}/jobs/{{id}}", pages.job, allow_head=False)
    r.add_post(f"{BASE}/jobs/{{id}}/cancel", actions.cancel)
    r.add_post(f"{BASE}/jobs/{{id}}/reschedule", actions.reschedule)
    r.add_get(f"{BASE}/dead", pages.dead, allow_head=False)
    r.add_post(f"{BASE}/dead/{{id}}/replay", actions.replay)
    r.add_post(f"{BASE}/dead/{{id}}/purge", actions.purge)
    r.add_get(f"{BASE}/outcomes", pages.outcomes, allow_head=False)
    r.add_get(f"{BASE}/outcomes/stream", stream.outcomes_stream, allow_head=False)
    r.add_get(f"{BASE}/new", pages.new_form, allow_head=False)
    r.add_post(f"{BASE}/new", actions.schedule_one)
    r.add_get(f"{BASE}/import", pages.import_form, allow_head=False)
    r.add_post(f"{BASE}/import", actions.import_file)
    r.add_static(f"{BASE}/static", _static_dir(), append_version=True)


async def _close_streams(app: web.Application) -> None:
    app[DASHBOARD].closing.set()


async def _to_overview(_request: web.Request) -> web.StreamResponse:
    return redirect(f"{BASE}/")


def _static_dir() -> str:
    from importlib import resources

    return str(resources.files("producers.dashboard").joinpath("static"))
