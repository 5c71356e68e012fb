"""The sandbox's control API under `/_sandbox/` (kept out of the `/rest/` namespace).

Routes (all JSON):
- `POST /_sandbox/faults`: queue faults. Body: a list of fault specs, each optionally with
  `portal`, `method` and `times` (repeat count); or `{"faults": [...], "portal", "method"}`;
  or `{"random": {"failure_ratio", "kinds": [fault specs], "seed", "portal", "method"}}`.
  Answers the plan, as `GET` does.
- `GET /_sandbox/faults`: `{"pending": [...], "random": {...} | null}`.
- `DELETE /_sandbox/faults`: drop queued faults and chaos mode; `{"cleared": n}`.
- `GET /_sandbox/calls?portal=P&executed_only=true&method=M|all`: recorded requests, oldest
  first (default method `voximplant.callback.start`).
- `POST /_sandbox/reset`: clear calls, faults and buckets; `{"ok": true}`.
- `POST /_sandbox/calls/mix`: `{"portal", "mix": {"connected": 3, "busy": 1, ...}, "duration_s"}`: how
  the portal's next calls end (`ops.sandbox.calls`) and after how long.
- `GET /_sandbox/calls/results?portal=P`: CALL_ID -> result of every call placed.
- `POST /_sandbox/events`: `{"portal", "handler", "application_token", "event"}` binds a handler as
  an administrator's outgoing webhook would (webhook portals; OAuth apps use `event.bind`).
- `POST /_sandbox/portals`: add or replace a portal (see `SandboxPortal.from_dict`);
  answers its JSON form plus `webhook_url`.
- `GET /_sandbox/portals`: every portal's JSON form.
- `PATCH /_sandbox/portals/{name}`: change a portal's switches (`SandboxPortal.with_switches`:
  `scopes`, `permissions`, `voices`, `auth_refusal`, `moved_to`, `operating_limit_s`,
  `operating_window_s`, `processing_s`) without resetting its bucket, tokens or meters; answers
  its JSON form.
- `POST /_sandbox/oauth/grant`: `{"portal", "client_id"}` -> `{"refresh_token"}`, a first refresh
  token, as installing the app would give (the client must be in the portal's `oauth_clients`).
- `POST /_sandbox/oauth/expire`: `{"portal"}` -> `{"expired": n}`, every access token of the
  portal expires now.
- `GET /_sandbox/oauth/requests?portal=P`: recorded token-endpoint requests, oldest first.

A malformed body answers 400 `{"error": "INVALID_CONTROL_REQUEST", "error_description": ...}`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from ops.sandbox.calls import CALL_END_EVENT, Handler
from ops.sandbox.faults import CALLBACK_START, Fault
from ops.sandbox.portal import SandboxPortal

if TYPE_CHECKING:
    from ops.sandbox.state import Sandbox

_TRUE = ("1", "true", "yes")

_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def control_routes(sandbox: Sandbox) -> list[web.RouteDef]:
    """Return the `/_sandbox/...` routes bound to `sandbox`.

    Args:
        sandbox: The state the routes read and change.

    Returns:
        Route definitions for `app.router.add_routes`.
    """

    async def post_faults(request: web.Request) -> web.Response:
        body = await _json_body(request)
        if isinstance(body, Mapping) and "random" in body:
            sandbox.set_random_faults_from_dict(dict(body["random"]))
        else:
            batches = _parse_fault_batches(body)
            for _, portal, method in batches:  # check all before queueing any
                sandbox.check_fault_target(portal, method)
            for faults, portal, method in batches:
                sandbox.add_faults(faults, portal=portal, method=method)
        return web.json_response(sandbox.faults())

    async def get_faults(_request: web.Request) -> web.Response:
        return web.json_response(sandbox.faults())

    async def delete_faults(_request: web.Request) -> web.Response:
        return web.json_response({"cleared": sandbox.clear_faults()})

    async def get_calls(request: web.Request) -> web.Response:
        method: str | None = request.query.get("method", CALLBACK_START).lower()
        calls = sandbox.calls(
            portal=request.query.get("portal"),
            executed_only=request.query.get("executed_only", "").lower() in _TRUE,
            method=None if method == "all" else method,
        )
        return web.json_response([call.to_dict() for call in calls])

    async def post_reset(_request: web.Request) -> web.Response:
        sandbox.reset()
        return web.json_response({"ok": True})

    handlers = {
        ("POST", "/_sandbox/faults"): post_faults,
        ("GET", "/_sandbox/faults"): get_faults,
        ("DELETE", "/_sandbox/faults"): delete_faults,
        ("GET", "/_sandbox/calls"): get_calls,
        ("POST", "/_sandbox/reset"): post_reset,
        **_call_handlers(sandbox),
        **_portal_handlers(sandbox),
        **_oauth_handlers(sandbox),
    }
    return [
        web.route(method, path, _answer_bad_input(handler)) for (method, path), handler in handlers.items()
    ]


def _call_handlers(sandbox: Sandbox) -> dict[tuple[str, str], _Handler]:
    """Return the `/_sandbox/calls...` and `/_sandbox/events` handlers by `(method, path)`."""

    async def post_call_mix(request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, Mapping) or not isinstance(body.get("mix"), Mapping):
            raise TypeError('expected {"portal", "mix": {result: weight}, "duration_s"}')
        duration = body.get("duration_s")
        sandbox.player.set_mix(
            str(body.get("portal", "default")),
            body["mix"],
            duration_s=None if duration is None else float(duration),
        )
        return web.json_response({"mix": sandbox.player.mix, "duration_s": sandbox.player.duration_s})

    async def get_call_results(request: web.Request) -> web.Response:
        return web.json_response(sandbox.player.results(request.query.get("portal")))

    async def post_event_handler(request: web.Request) -> web.Response:
        # an outgoing webhook an administrator creates in the portal's UI (webhook portals)
        body = await _json_body(request)
        if not isinstance(body, Mapping) or not body.get("handler") or not body.get("application_token"):
            raise TypeError('expected {"portal", "handler", "application_token", "event"}')
        event = str(body.get("event", CALL_END_EVENT)).upper()
        handler = Handler(event, str(body["handler"]), str(body["application_token"]))
        sandbox.player.bind(str(body.get("portal", "default")), handler)
        return web.json_response({"bound": True})

    return {
        ("POST", "/_sandbox/calls/mix"): post_call_mix,
        ("GET", "/_sandbox/calls/results"): get_call_results,
        ("POST", "/_sandbox/events"): post_event_handler,
    }


def _portal_handlers(sandbox: Sandbox) -> dict[tuple[str, str], _Handler]:
    """Return the `/_sandbox/portals...` handlers by `(method, path)`."""

    async def post_portals(request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, Mapping):
            raise TypeError("a portal spec must be a JSON object")
        portal = SandboxPortal.from_dict(body)
        sandbox.add_portal(portal)
        user_id, code = portal.first_webhook()
        webhook_url = f"{request.url.origin()}/rest/{user_id}/{code}/"
        return web.json_response({**portal.to_dict(), "webhook_url": webhook_url})

    async def get_portals(_request: web.Request) -> web.Response:
        return web.json_response([portal.to_dict() for portal in sandbox.portals.values()])

    async def patch_portal(request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, Mapping):
            raise TypeError("the switches must be a JSON object")
        return web.json_response(sandbox.set_switches(request.match_info["name"], dict(body)).to_dict())

    return {
        ("POST", "/_sandbox/portals"): post_portals,
        ("GET", "/_sandbox/portals"): get_portals,
        ("PATCH", "/_sandbox/portals/{name}"): patch_portal,
    }


def _oauth_handlers(sandbox: Sandbox) -> dict[tuple[str, str], _Handler]:
    """Return the `/_sandbox/oauth/...` handlers by `(method, path)`."""

    async def post_oauth_grant(request: web.Request) -> web.Response:
        body = await _json_body(request)
        token = sandbox.issue_refresh_token(str(body["portal"]), str(body["client_id"]))
        return web.json_response({"refresh_token": token})

    async def post_oauth_expire(request: web.Request) -> web.Response:
        portal = str((await _json_body(request))["portal"])
        return web.json_response({"expired": sandbox.expire_access_tokens(portal)})

    async def get_oauth_requests(request: web.Request) -> web.Response:
        requests = sandbox.token_requests(request.query.get("portal"))
        return web.json_response([token_request.to_dict() for token_request in requests])

    return {
        ("POST", "/_sandbox/oauth/grant"): post_oauth_grant,
        ("POST", "/_sandbox/oauth/expire"): post_oauth_expire,
        ("GET", "/_sandbox/oauth/requests"): get_oauth_requests,
    }


def _answer_bad_input(handler: _Handler) -> _Handler:
    async def wrapped(request: web.Request) -> web.StreamResponse:
        try:
            response: web.StreamResponse = await handler(request)
        except (ValueError, KeyError, TypeError) as exc:
            body = {"error": "INVALID_CONTROL_REQUEST", "error_description": str(exc)}
            return web.json_response(body, status=400)
        return response

    return wrapped


async def _json_body(request: web.Request) -> Any:
    try:
        return json.loads(await request.text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON: {exc}") from exc


def _parse_fault_batches(body: Any) -> list[tuple[list[Fault], str | None, str]]:
    """Turn a `POST /_sandbox/faults` body into `(faults, portal, method)` batches.

    Everything is parsed before anything is queued, so a bad spec queues nothing.
    """
    portal: str | None = None
    method = CALLBACK_START
    specs = body
    if isinstance(body, Mapping):
        specs, portal, method = body.get("faults"), body.get("portal"), body.get("method", CALLBACK_START)
    if not isinstance(specs, list):
        raise TypeError("expected a list of fault specs, {'faults': [...]} or {'random': {...}}")
    batches = []
    for spec in specs:
        if not isinstance(spec, Mapping):
            raise TypeError(f"a fault spec must be a JSON object, got {spec!r}")
        times = int(spec.get("times", 1))
        if times < 0:
            raise ValueError(f"times must not be negative, got {times}")
        fault = Fault.from_dict(spec)
        batches.append(([fault] * times, spec.get("portal", portal), str(spec.get("method", method))))
    return batches
