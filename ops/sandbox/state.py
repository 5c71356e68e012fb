"""The sandbox's state and request logic: portals, buckets, faults and recorded calls.

`Sandbox.dispatch` decides, without any I/O, how one REST request is answered. The order of
checks follows Bitrix24: a portal that moved redirects first (its web server answers, nothing is
counted); the request is counted in its portal's leaky bucket (every method counts; a request
whose webhook is unknown has no portal and is not counted), then the format suffix, the method
name (an unknown method is 404 even with bad credentials, as in `CRestServer::process`), the
webhook (401), the method's scope (401), its execution-time limit (429), the next fault, and
finally the method itself (which checks the user's permission, 403; `ops.sandbox.gates`).
`Sandbox.dispatch_oauth` does the same for the OAuth form: an access token, even an expired one,
names its portal (so the request counts in that bucket), and the token check stands in for the
webhook check; the token endpoint itself lives in `ops.sandbox.oauth`.
The aiohttp layer (`ops.sandbox.app`) carries the decision out: waiting, hanging, dropping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from ops.sandbox.bucket import LeakyBucket
from ops.sandbox.calls import CallPlayer, Handler, app_token
from ops.sandbox.envelope import OperatingMeter, time_envelope
from ops.sandbox.fault_control import FaultControl
from ops.sandbox.faults import CALLBACK_START, FaultKind
from ops.sandbox.gates import auth_refusal_reply, moved_reply, operating_reply
from ops.sandbox.methods import (
    CALL_METHODS,
    EVENT_GET,
    STATISTIC_GET,
    SUPPORTED_METHODS,
    MethodOutcome,
    error_body,
    new_call_id,
    php_string,
    run_method,
    scope_refusal,
)
from ops.sandbox.oauth import OAuthServer, TokenRequest
from ops.sandbox.plan import FaultPlan
from ops.sandbox.portal import RecordedCall, SandboxPortal
from ops.sandbox.recorder import CallRecorder, ReceivedRequest
from ops.sandbox.reply import Reply, fault_reply, request_echo

RATE_LIMIT_FAULT = "rate_limit"


class Sandbox(FaultControl):
    """A set of fake Bitrix24 portals plus the fault plan and the record of calls."""

    def __init__(
        self,
        portals: Iterable[SandboxPortal] = (),
        *,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """Create the sandbox.

        Args:
            portals: The portals to serve; a single default portal when empty.
            clock: Monotonic clock for the leaky buckets and call timestamps.
            wall_clock: Unix-time clock for `time` objects and CALL_IDs.
        """
        self._clock = clock
        self._wall_clock = wall_clock
        self._portals: dict[str, SandboxPortal] = {}
        self._buckets: dict[str, LeakyBucket] = {}
        self._meters: dict[tuple[str, str], OperatingMeter] = {}
        self._plan = FaultPlan()
        self._recorder = CallRecorder()
        self._oauth = OAuthServer(wall_clock=wall_clock)
        self.player = CallPlayer()
        for portal in list(portals) or [SandboxPortal(name="default")]:
            self.add_portal(portal)

    @property
    def portals(self) -> dict[str, SandboxPortal]:
        """The portals by name (a copy; use `add_portal` to change them)."""
        return dict(self._portals)

    def add_portal(self, portal: SandboxPortal) -> None:
        """Add a portal, or replace the one with the same name (its bucket starts empty).

        Raises:
            ValueError: If one of its webhooks already belongs to another portal.
        """
        for other in self._portals.values():
            if other.name != portal.name and other.webhooks & portal.webhooks:
                raise ValueError(f"a webhook of portal {portal.name!r} already belongs to {other.name!r}")
        self._portals[portal.name] = portal
        self._oauth.forget_portal(portal.name)
        self._buckets[portal.name] = LeakyBucket(portal.rate, portal.burst)
        self._meters = {key: meter for key, meter in self._meters.items() if key[0] != portal.name}

    def app(self) -> web.Application:
        """Return a new aiohttp application serving this sandbox."""
        from ops.sandbox.app import create_app  # app.py imports this module

        return create_app(self)

    def calls(
        self, portal: str | None = None, executed_only: bool = False, *, method: str | None = CALLBACK_START
    ) -> list[RecordedCall]:
        """Return recorded requests, oldest first.

        Args:
            portal: Only this portal's requests; None for all.
            executed_only: Only requests that placed a call.
            method: Only this method (default `voximplant.callback.start`); None for all.

        Returns:
            The matching records.
        """
        return self._recorder.select(portal, executed_only, method=method)

    async def wait_for_calls(
        self,
        count: int,
        *,
        portal: str | None = None,
        executed_only: bool = False,
        method: str | None = CALLBACK_START,
        timeout_s: float = 5.0,
    ) -> list[RecordedCall]:
        """Wait until at least `count` matching requests are recorded (see `calls`).

        Raises:
            TimeoutError: If they do not arrive within `timeout_s`.
        """
        return await self._recorder.wait_for(
            count, portal=portal, executed_only=executed_only, method=method, timeout_s=timeout_s
        )

    def reset(self) -> None:
        """Forget recorded calls and token requests, faults, bucket levels and operating meters."""
        self._recorder.clear()
        self.player.clear()
        self._oauth.clear_requests()
        self._plan.clear()
        self._meters.clear()
        for name, portal in self._portals.items():
            self._buckets[name] = LeakyBucket(portal.rate, portal.burst)

    def dispatch(
        self, user_id: str, code: str, method: str, params: dict[str, Any], *, host: str = "", path: str = ""
    ) -> Reply:
        """Decide how to answer one REST request and record it.

        Args:
            user_id: The USER_ID path segment.
            code: The webhook code path segment.
            method: The method path segment, maybe with a `.json` or `.xml` suffix.
            params: The request parameters (query merged with body).
            host: The Host it was sent to (a moved portal redirects the old one).
            path: Its path (recorded; a redirect keeps it).

        Returns:
            The reply the HTTP layer must carry out.
        """
        portal = self._find_portal(user_id, code)
        refusal = auth_refusal_reply(portal) if portal is not None else None
        where = (host, path)
        return self._dispatch(portal, refusal, user_id, method, params, code=code, where=where)

    def dispatch_oauth(self, method: str, params: dict[str, Any], *, host: str = "", path: str = "") -> Reply:
        """Decide how to answer a REST request in the OAuth form (`/rest/METHOD`, token as `auth`).

        A valid token runs the method as its portal's webhook would (same bucket, same record);
        an expired or unknown one is refused before execution (see `OAuthServer.check`).
        """
        enabled = any(portal.oauth_clients for portal in self._portals.values())
        check = self._oauth.check(php_string(params.get("auth")), oauth_enabled=enabled)
        portal = self._portals.get(check.portal) if check.portal else None
        refusal = None if check.refusal is None else Reply(check.status, check.refusal)
        return self._dispatch(portal, refusal, "", method, params, oauth=True, where=(host, path))

    def set_switches(self, portal: str, spec: dict[str, Any]) -> SandboxPortal:
        """Change a portal's switches (`SandboxPortal.with_switches`) without resetting anything else
        (its bucket, tokens and meters stay).

        Raises:
            KeyError: If there is no such portal.
            ValueError: If a switch has a wrong value.
        """
        changed = self._portals[portal].with_switches(spec)
        self._portals[portal] = changed
        for (name, _method), meter in self._meters.items():
            if name == portal:
                meter.window_s = changed.operating_window_s
        return changed

    def oauth_token(self, params: dict[str, Any], *, base_url: str) -> tuple[int, dict[str, Any]]:
        """Answer a token-endpoint request (`GET /oauth/token/`); see `OAuthServer.token`."""
        return self._oauth.token(self._portals, params, base_url=base_url)

    def issue_refresh_token(self, portal: str, client_id: str) -> str:
        """Return a first refresh token, as installing the app would (KeyError/ValueError: unknown)."""
        return self._oauth.issue_refresh_token(self._portals[portal], client_id)

    def token_requests(self, portal: str | None = None) -> list[TokenRequest]:
        """Return the recorded token-endpoint requests, oldest first; only `portal`'s unless None."""
        return self._oauth.requests(portal)

    def expire_access_tokens(self, portal: str) -> int:
        """Expire every access token of `portal` now; return how many were valid (KeyError: unknown)."""
        if portal not in self._portals:
            raise KeyError(f"unknown portal {portal!r}")
        return self._oauth.expire_access_tokens(portal)

    def _dispatch(
        self,
        portal: SandboxPortal | None,
        refusal: Reply | None,
        user_id: str,
        method: str,
        params: dict[str, Any],
        *,
        code: str = "",
        oauth: bool = False,
        where: tuple[str, str] = ("", ""),
    ) -> Reply:
        name, _, suffix = method.lower().rpartition(".")
        if suffix not in ("json", "xml"):
            name, suffix = method.lower(), "json"
        host, path = where
        request = ReceivedRequest(
            portal, name, params, user_id, self._clock(), self._wall_clock(), host=host, path=path
        )
        refused = self._refused(request, refusal, suffix, oauth=oauth)
        if refused is not None or portal is None:
            assert refused is not None
            return refused
        return self._run(request, portal, code)

    def _refused(
        self, request: ReceivedRequest, refusal: Reply | None, suffix: str, *, oauth: bool
    ) -> Reply | None:
        """The recorded answer to a request refused before its method runs, else None."""
        portal, name, record = request.portal, request.method, self._recorder.record
        moved = moved_reply(portal, request.host, request.path) if portal is not None else None
        if moved is not None:
            return record(request, moved, executed=False, fault="moved")
        if portal is not None and not self._buckets[portal.name].try_acquire(request.received_monotonic):
            body = error_body("QUERY_LIMIT_EXCEEDED", "Too many requests")
            return record(request, Reply(503, body), executed=False, fault=RATE_LIMIT_FAULT)
        if suffix == "xml":
            body = error_body(
                "ERROR_INTERNAL_WRONG_TRANSPORT", "The sandbox portal answers only JSON, not .xml"
            )
            return record(request, Reply(400, body), executed=False)
        if name not in SUPPORTED_METHODS:
            body = error_body("ERROR_METHOD_NOT_FOUND", "Method not found!")
            return record(request, Reply(404, body), executed=False)
        if portal is None or refusal is not None:
            reply = refusal or Reply(401, error_body("NO_AUTH_FOUND", "Wrong authorization data"))
            return record(request, reply, executed=False, fault="auth" if portal else None)
        gate = scope_refusal(portal, name, oauth=oauth)
        if gate is not None:
            return record(request, Reply(gate.status, gate.body), executed=False, fault="scope")
        limited = operating_reply(portal, self._meter(portal, name), request.received_wall)
        if limited is not None:
            return record(request, limited, executed=False, fault="operating")
        return None

    def _run(self, request: ReceivedRequest, portal: SandboxPortal, code: str) -> Reply:
        """Run the method (or the next fault instead of it, or around it) and record the answer."""
        name, params = request.method, request.params
        fault = self._plan.take(portal.name, name)
        echo = request_echo(params, code)
        if fault is not None and not fault.executed:
            reply = fault_reply(fault, echo)
            return self._recorder.record(request, reply, executed=False, fault=fault.kind.value)
        if name in CALL_METHODS:
            outcome = self._call_method(portal, name, params, oauth=request.user_id == "")
        else:
            outcome = run_method(
                portal, name, params, make_call_id=lambda: new_call_id(request.received_wall)
            )
        if outcome.call_id is not None:
            self.player.place(
                portal.name,
                outcome.call_id,
                line=php_string(params.get("FROM_LINE")),
                number=php_string(params.get("TO_NUMBER")),
                now=request.received_wall,
            )
        timed = (portal.name, name, request.received_wall) if outcome.status == 200 else None
        reply = Reply(outcome.status, outcome.body, timed=timed)
        if fault is not None and fault.kind is FaultKind.DELAY:
            reply = Reply(outcome.status, outcome.body, delay_s=fault.seconds, timed=timed)
        elif fault is not None:
            reply = fault_reply(fault, echo)
        fault_kind = None if fault is None else fault.kind.value
        if fault is None and outcome.status == 403 and outcome.body.get("error") == "ACCESS_DENIED":
            fault_kind = "permission"
        return self._recorder.record(
            request, reply, executed=outcome.executed, call_id=outcome.call_id, fault=fault_kind
        )

    def _call_method(
        self, portal: SandboxPortal, name: str, params: dict[str, Any], *, oauth: bool
    ) -> MethodOutcome:
        """``voximplant.statistic.get``, ``event.bind`` (OAuth only, as Bitrix24) and ``event.get``."""
        if name == STATISTIC_GET:
            filters = params.get("FILTER") if isinstance(params.get("FILTER"), dict) else {}
            rows = self.player.rows(portal.name, filters or {}, now=self._wall_clock())
            return MethodOutcome(200, {"result": rows, "total": len(rows)})
        if name == EVENT_GET:
            bound = self.player.handlers.get(portal.name, [])
            return MethodOutcome(
                200, {"result": [{"event": h.event, "handler": h.url, "auth_type": 0} for h in bound]}
            )
        if not oauth:
            return MethodOutcome(
                401, error_body("WRONG_AUTH_TYPE", "Current authorization type is denied for this method")
            )
        event, handler = php_string(params.get("event")).upper(), php_string(params.get("handler"))
        if not event or not handler:
            return MethodOutcome(400, error_body("ERROR_ARGUMENT", "event and handler are required"))
        self.player.bind(portal.name, Handler(event, handler, application_token=app_token(portal)))
        return MethodOutcome(200, {"result": True})

    def response_body(self, reply: Reply) -> dict[str, Any] | None:
        """Return the JSON body to send now, with a fresh `time` object for a success."""
        if reply.body is None or reply.timed is None:
            return reply.body
        name, method, started = reply.timed
        finished = self._wall_clock()
        portal = self._portals.get(name)
        spent = portal.processing_s if portal is not None and portal.processing_s is not None else None
        processing = max(0.0, finished - started) if spent is None else spent
        window = portal.operating_window_s if portal is not None else OperatingMeter().window_s
        meter = self._meters.setdefault((name, method), OperatingMeter(window))
        operating, reset_at = meter.add(started, processing)
        envelope = time_envelope(started, finished, operating, reset_at, processing=processing)
        return {**reply.body, "time": envelope}

    def _meter(self, portal: SandboxPortal, method: str) -> OperatingMeter:
        return self._meters.setdefault((portal.name, method), OperatingMeter(portal.operating_window_s))

    def _find_portal(self, user_id: str, code: str) -> SandboxPortal | None:
        if not user_id.isdigit():
            return None
        return next((p for p in self._portals.values() if p.has_webhook(int(user_id), code)), None)
