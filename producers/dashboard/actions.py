"""The dashboard's state changes (POST): log in and out, schedule one, import a file, cancel, run at
another time, replay, purge. Each checks the session's role and CSRF token first
(:func:`producers.dashboard.auth.check_post`), goes through the same producer code as every other
way in, and is logged with who did it (the token's name)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime
from urllib.parse import quote

import structlog
from aiohttp import web

from producers.api import PortalNotAllowed, not_cancellable
from producers.bulk import (
    DASHBOARD_MAX_BYTES,
    DASHBOARD_MAX_ROWS,
    FileProblem,
    FileTooLarge,
    file_format,
    import_rows,
    preview,
    read_rows,
)
from producers.dashboard.app import BASE, DASHBOARD, SESSION, redirect, render, require_session
from producers.dashboard.auth import SESSION_IDLE_S, check_origin, check_post, log_in, log_out, set_cookie
from producers.http.guards import CALLER
from producers.reschedule import NotReschedulable, run_at_another_time
from schemas.states import Status
from schemas.store.records import JobRecord

log = structlog.get_logger("callq.dashboard")

UPLOAD_TTL_S = 15 * 60
FORM_FIELDS = (
    "portal",
    "from_line",
    "to_number",
    "text_to_pronounce",
    "voice",
    "not_before",
    "idempotency_key",
)


def _back(request: web.Request, fallback: str, message: str) -> web.Response:
    target = request.headers.get("Referer", "")
    path = target.split(request.host, 1)[-1] if request.host in target else fallback
    path = path if path.startswith(BASE) else fallback
    path = path.split("?msg=")[0].split("&msg=")[0]
    return redirect(f"{path}{'&' if '?' in path else '?'}msg={quote(message)}")


async def login(request: web.Request) -> web.Response:
    """Check the posted token; set the session cookie."""
    dash = request.app[DASHBOARD]
    check_origin(request, caller=None, action="login")
    form = await request.post()
    session = await log_in(request, redis=dash.redis, keys=dash.keys, given=str(form.get("token", "")))
    if session is None:
        return render(request, "login.html", failed=True, status=401)
    request[CALLER] = session.caller  # the access log names the token
    response = redirect(f"{BASE}/")
    set_cookie(request, response, session)
    return response


@require_session
async def logout(request: web.Request) -> web.Response:
    """End the session (CSRF-checked like every POST, but allowed to read-only users)."""
    dash, session = request.app[DASHBOARD], request[SESSION]
    form = await request.post()
    if str(form.get("csrf", "")) != session.csrf:
        return web.Response(status=403, text="CSRF token missing or wrong", content_type="text/plain")
    await log_out(session, redis=dash.redis, keys=dash.keys)
    response = redirect(f"{BASE}/login")
    response.del_cookie("callq_session", path=BASE)
    return response


async def _job(request: web.Request, action: str) -> JobRecord | None:
    """The job of the path after the checks: session role, CSRF, the token's portals."""
    dash, session = request.app[DASHBOARD], request[SESSION]
    form = await request.post()
    check_post(request, session, str(form.get("csrf", "")), action=action)
    record = await dash.producer.ledger.read(request.match_info["id"][:200])
    if record is None or not session.caller.may_see(record.job.portal):
        return None
    return record


@require_session
async def cancel(request: web.Request) -> web.Response:
    """Cancel a waiting job."""
    record = await _job(request, "cancel")
    if record is None:
        return _back(request, f"{BASE}/scheduled", "no such job")
    caller = request[SESSION].caller.name
    cancelled, after = await request.app[DASHBOARD].producer.cancel(record.job_id, by=caller)
    log.info("dashboard.cancel", caller=caller, job_id=record.job_id, done=cancelled)
    return _back(
        request,
        f"{BASE}/scheduled",
        f"cancelled {record.job_id}" if cancelled else not_cancellable(after or record),
    )


@require_session
async def reschedule(request: web.Request) -> web.Response:
    """Run a waiting job at another time (a datetime-local in the portal's time zone)."""
    record = await _job(request, "reschedule")
    if record is None:
        return _back(request, f"{BASE}/scheduled", "no such job")
    dash = request.app[DASHBOARD]
    form = await request.post()
    portal = dash.settings.portals.get(record.job.portal)
    try:
        at = datetime.fromisoformat(str(form.get("at", "")))
        if at.tzinfo is None and portal is not None:
            at = at.replace(tzinfo=portal.timezone)
        run_at = await run_at_another_time(dash.producer, record, at=at)
    except (ValueError, NotReschedulable) as exc:
        return _back(request, f"{BASE}/jobs/{record.job_id}", str(exc))
    log.info(
        "dashboard.reschedule",
        caller=request[SESSION].caller.name,
        job_id=record.job_id,
        run_at=run_at.isoformat(),
    )
    return _back(request, f"{BASE}/jobs/{record.job_id}", f"{record.job_id} runs at {run_at.isoformat()}")


@require_session
async def replay(request: web.Request) -> web.Response:
    """Replay a dead job as a new one."""
    record = await _job(request, "replay")
    if record is None or record.state != Status.DEAD:
        return _back(request, f"{BASE}/dead", "not a dead job")
    replayed = await request.app[DASHBOARD].dead_letters.replay(record.job_id)
    new = replayed.submitted.job_id if replayed.submitted else None
    log.info(
        "dashboard.replay",
        caller=request[SESSION].caller.name,
        job_id=record.job_id,
        new_job_id=new,
        error=replayed.error,
    )
    return _back(
        request,
        f"{BASE}/dead",
        f"replayed {record.job_id} as {new}" if new else f"not replayed: {replayed.error}",
    )


@require_session
async def purge(request: web.Request) -> web.Response:
    """Delete one dead job for good."""
    record = await _job(request, "purge")
    if record is None or record.state != Status.DEAD:
        return _back(request, f"{BASE}/dead", "not a dead job")
    purged = await request.app[DASHBOARD].producer.ledger.purge([record.job_id])
    log.info("dashboard.purge", caller=request[SESSION].caller.name, job_id=record.job_id, done=bool(purged))
    return _back(request, f"{BASE}/dead", f"purged {record.job_id}" if purged else "not purged")


@require_session
async def schedule_one(request: web.Request) -> web.Response:
    """Schedule one callback from the form (validated like every way in)."""
    dash, session = request.app[DASHBOARD], request[SESSION]
    form = await request.post()
    check_post(request, session, str(form.get("csrf", "")), action="schedule")
    fields = {name: str(form[name]).strip() for name in FORM_FIELDS if str(form.get(name, "")).strip()}
    portal = dash.settings.portals.get(fields.get("portal", ""))
    if "not_before" in fields and portal is not None:
        try:
            moment = datetime.fromisoformat(fields["not_before"])
            fields["not_before"] = (
                moment if moment.tzinfo else moment.replace(tzinfo=portal.timezone)
            ).isoformat()
        except ValueError:
            pass  # validation names the field
    try:
        submitted = await dash.producer.submit(fields, scope=session.caller.portals)
    except PortalNotAllowed as exc:
        return render(request, "new.html", result={"error": str(exc)}, form=fields, status=403)
    log.info(
        "dashboard.schedule",
        caller=session.caller.name,
        job_id=submitted.job_id,
        status=str(submitted.status),
    )
    result = {
        "job_id": submitted.job_id,
        "status": str(submitted.status),
        "run_at": submitted.run_at,
        "error": submitted.error.description if submitted.error else None,
        "fields": [f"{e['field']}: {e['message']}" for e in (submitted.error.fields or [])]
        if submitted.error
        else [],
    }
    return render(
        request, "new.html", result=result, form={k: v for k, v in fields.items() if k != "to_number"}
    )


SPLIT = "; split it, or import it with callq enqueue --file"
TOO_LARGE = (
    f"the file is larger than {DASHBOARD_MAX_BYTES // (1024 * 1024)} MiB, the most the dashboard imports at once"
    + SPLIT
)


def _import_problem(request: web.Request, problem: str, *, status: int) -> web.Response:
    return render(
        request, "import.html", status=status, summary=None, upload_id=None, problem=problem, done=False
    )


@require_session
async def import_file(request: web.Request) -> web.Response:
    """Bulk import, in two steps: ``preview`` (upload; nothing queued; the rejected rows with their
    reasons) and ``confirm`` (queue the previewed file)."""
    dash, session = request.app[DASHBOARD], request[SESSION]
    # a file is larger than the API's body limit (a job is a few hundred bytes), up to the dashboard's cap
    try:
        form = await request.clone(client_max_size=DASHBOARD_MAX_BYTES + 64 * 1024).post()
    except web.HTTPRequestEntityTooLarge:
        return _import_problem(request, TOO_LARGE, status=413)
    check_post(request, session, str(form.get("csrf", "")), action="import")
    scope = session.caller.portals
    default = next(iter(dash.settings.portals)) if len(dash.settings.portals) == 1 else None
    if form.get("step") == "confirm":
        upload_id = str(form.get("upload_id", ""))[:64]
        key = dash.keys.dashboard_upload(session.session_id, upload_id)
        stored = await dash.redis.getdel(key)
        if stored is None:
            return render(
                request,
                "import.html",
                summary=None,
                upload_id=None,
                problem="the preview expired: upload the file again",
                done=False,
            )
        # read as the preview read it: its format was kept with the file (a .jsonl whose first line is
        # not "{" would be read as CSV otherwise)
        fmt, _, data = stored.partition(b"\n")
        try:
            rows = await asyncio.to_thread(read_rows, data, filename=f"upload.{fmt.decode()}")
        except FileProblem as exc:
            return _import_problem(request, str(exc), status=422)
        summary = await import_rows(dash.producer, rows, default_portal=default, scope=scope)
        log.info(
            "dashboard.import", caller=session.caller.name, **{str(k): v for k, v in summary.counts.items()}
        )
        return render(request, "import.html", summary=summary, upload_id=None, problem=None, done=True)
    upload = form.get("file")
    if not isinstance(upload, web.FileField):
        return render(
            request, "import.html", summary=None, upload_id=None, problem="choose a file", done=False
        )
    with upload.file:
        data = upload.file.read()
    try:  # parsed in a thread: the server's other requests go on meanwhile
        rows = await asyncio.to_thread(
            read_rows,
            data,
            filename=upload.filename,
            max_rows=DASHBOARD_MAX_ROWS,
            max_bytes=DASHBOARD_MAX_BYTES,
        )
    except FileTooLarge as exc:
        return _import_problem(request, f"{exc}{SPLIT}", status=413)
    except FileProblem as exc:
        return _import_problem(request, str(exc), status=422)
    summary, _ = await preview(dash.producer, rows, default_portal=default, scope=scope)
    upload_id = secrets.token_urlsafe(16)
    # the file and the format it was read in, so that the confirmation imports exactly what was previewed
    fmt = file_format(data.decode("utf-8-sig"), upload.filename or "")
    await dash.redis.set(
        dash.keys.dashboard_upload(session.session_id, upload_id),
        fmt.encode() + b"\n" + data,
        ex=min(UPLOAD_TTL_S, SESSION_IDLE_S),
    )
    log.info("dashboard.import_preview", caller=session.caller.name, rows=summary.total)
    return render(request, "import.html", summary=summary, upload_id=upload_id, problem=None, done=False)
