"""``POST /v1/bitrix/events/{portal}``: Bitrix24's ``OnVoximplantCallEnd``, pushed (an extension, issue 14).

Bitrix24 POSTs a form with PHP-style keys: ``event`` (``ONVOXIMPLANTCALLEND``), ``data[CALL_ID]``,
``data[CALL_FAILED_CODE]``, ``data[CALL_DURATION]``, ... and ``auth[application_token]``. The token is
compared in constant time with the portal's ``event_token`` (``[portals.NAME.calls]``); a portal
without one, or a wrong token, is ``403`` and changes nothing; a body that is not a readable form
(not UTF-8, a broken multipart body) is ``400``. A CALL_ID callq did not place (or
whose result is recorded already) is ``200`` and ignored, so Bitrix24 does not send it again. A
matched one is recorded at once (:func:`schemas.store.calls.settle_call_end`: one script writes the
result, or the redial, and the outcome stream's entry), and answered ``200``. No bearer token: the
application token is the event's credential.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from aiohttp import web

from producers.http.guards import HttpProblem, json_response
from schemas.config import Settings
from schemas.policy.call_result import CallEnd, call_end_from_fields
from schemas.states import CallState
from schemas.store.calls import CallStore, settle_call_end
from schemas.store.ledger import Ledger
from schemas.store.records import JobRecord

log = structlog.get_logger("callq.http")

CALL_END = "ONVOXIMPLANTCALLEND"
EVENT_PUSHED = "call.pushed"
EVENT_REFUSED = "call.push_refused"

OnCallEnd = Callable[[JobRecord, CallEnd, bool], None]
"""Told of each call's end a push recorded (record, end, whether final): ``callq serve`` counts it."""

CALLS = web.AppKey("callq.http.calls", CallStore)
LEDGER = web.AppKey("callq.http.ledger", Ledger)
EVENT_SETTINGS = web.AppKey("callq.http.event_settings", Settings)
ON_CALL_END: web.AppKey[OnCallEnd] = web.AppKey("callq.http.on_call_end")


def add_event_routes(
    app: web.Application,
    *,
    ledger: Ledger,
    calls: CallStore,
    settings: Settings,
    on_call_end: OnCallEnd | None = None,
) -> None:
    """Serve ``POST /v1/bitrix/events/{portal}`` on ``app``."""
    app[CALLS] = calls
    app[LEDGER] = ledger
    app[EVENT_SETTINGS] = settings
    app[ON_CALL_END] = on_call_end or (lambda _record, _end, _final: None)
    app.router.add_post("/v1/bitrix/events/{portal}", receive_event, name="bitrix_events")


async def receive_event(request: web.Request) -> web.Response:
    """Take one pushed event (see the module)."""
    settings = request.app[EVENT_SETTINGS]
    name = request.match_info["portal"]
    portal = settings.portals.get(name)
    try:
        form = await request.post()
    except ValueError as exc:  # UnicodeDecodeError too: not UTF-8, a broken multipart body
        log.warning(EVENT_REFUSED, portal=name if portal is not None else None, error=type(exc).__name__)
        raise HttpProblem(400, "MALFORMED_EVENT", "the body is not a readable form") from None
    token = str(form.get("auth[application_token]", ""))
    expected = portal.calls.event_token if portal is not None else None
    if expected is None or not hmac.compare_digest(token.encode(), expected.encode()):
        log.warning(EVENT_REFUSED, portal=name if portal is not None else None)
        raise HttpProblem(403, "FORBIDDEN", "unknown portal or wrong application_token")
    if str(form.get("event", "")).upper() != CALL_END:
        return json_response({"ok": True, "ignored": "event"})
    data = {
        key[5:-1]: str(value) for key, value in form.items() if key.startswith("data[") and key.endswith("]")
    }
    end = call_end_from_fields(data, source="push")
    if end is None:
        return json_response({"ok": True, "ignored": "no CALL_ID"})
    calls = request.app[CALLS]
    job_id = await calls.job_of(name, end.call_id)
    record = await request.app[LEDGER].read(job_id) if job_id else None
    if record is None or record.call is None or record.call.call_id != end.call_id:
        return json_response({"ok": True, "ignored": "unknown call"})
    written = await settle_call_end(calls, settings, record, end, now=datetime.now(UTC))
    if written.done:
        request.app[ON_CALL_END](record, end, written.state == CallState.ENDED)
        log.info(
            EVENT_PUSHED, job_id=record.job_id, portal=name, result=str(end.kind), call_state=written.state
        )
    return json_response({"ok": True, "job_id": record.job_id, "call": written.state})
