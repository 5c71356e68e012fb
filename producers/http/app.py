"""The HTTP way in (contract §4), served by ``callq serve``: an aiohttp application over
:class:`producers.api.Producer`.

Routes (``schemas/openapi.json`` documents each, served at ``GET /openapi.json``):

- ``POST /v1/callbacks`` submits the job JSON. ``202`` for every submission that made a job of its
  own — ``scheduled`` (with ``run_at``), ``duplicate`` (with ``duplicate_of``: the line + number is
  taken; no call) and ``expired`` (its deadline cannot be met: a deadline in the past is not invalid
  input; the job ends ``expired`` at once, with ``error``). ``200`` for an idempotent repeat (an
  ``idempotency_key`` known on the portal, with the same request): the first job's id and state.
  ``409`` ``IDEMPOTENCY_KEY_REUSED`` for a known key with a different request (what differs in
  ``error.fields``; recorded ``rejected``). Invalid input is ``422`` with ``errors: [{field,
  message}]``, recorded ``rejected``: every job that enters ends in an outcome.
- ``GET /v1/callbacks/{id}[?portal=NAME]``: the record by job id or idempotency key (``callq status
  --json``'s view: number masked), ``404`` if unknown, ``409`` ``AMBIGUOUS_KEY`` for a key on
  several portals and no ``portal``.
- ``DELETE /v1/callbacks/{id}[?portal=NAME]`` cancels a ``scheduled`` or ``retrying`` job: ``200``
  with the record; ``409`` with the record if it is running or already final (or ``AMBIGUOUS_KEY``);
  ``404`` if unknown.
- ``GET /healthz``, ``GET /readyz`` (Redis, a live worker and, for ``callq serve``, a configuration
  the workers share; :mod:`producers.http.ready`), ``GET /openapi.json``: no token.
- ``OPTIONS`` on the ``/v1`` routes answers CORS preflights: ``204`` for an allowed origin,
  ``403`` (without CORS headers) for any other.

Bearer tokens come from ``settings.bearer_tokens()`` (16 characters at least), compared in constant
time against every one. A token's scope (:class:`schemas.config.ApiToken`) is checked here: a read
token gets ``403`` for POST and DELETE, a POST to a portal outside its scope ``403``, and a job on a
portal it may not see is ``404`` like one that does not exist. Requests that never enter (``401``,
``403``, ``413``, ``415``, ``400``/``408`` a body that cannot be read or does not come) record
nothing. Every error body is JSON (``{"error": {"code", "description"}}``), also for requests aiohttp
refuses before they reach a route (:mod:`producers.http.server`); Redis being unreachable or full is
``503`` with ``Retry-After``. With no token configured, :func:`create_app` and :func:`serve` refuse
to start (:class:`NoTokensError`) unless ``allow_no_auth=True`` is passed: an open endpoint that
rings phones must be a deliberate choice (tests and demos); :func:`serve` allows it only on a
loopback address (:class:`PublicNoAuthError`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from importlib import resources
from typing import Any

import structlog
from aiohttp import hdrs, web
from redis.asyncio import Redis

from producers.api import AmbiguousKeyError, PortalNotAllowed, Producer, not_cancellable
from producers.dashboard.app import add_dashboard
from producers.http.events import OnCallEnd, add_event_routes
from producers.http.guards import (
    CALLER,
    GUARD,
    JOB_ID,
    Guard,
    HttpProblem,
    Origin,
    auth_middleware,
    caller_scope,
    host_middleware,
    json_response,
    normalise_origins,
    outer_middleware,
    parse_origin,
    preflight,
    read_json_body,
    require_write,
)
from producers.http.ready import READY_CHECK, ConfigCheck, ReadyCheck, healthz, readyz, redis_and_worker_check
from producers.http.server import DEFAULT_TIMEOUTS, ConnectionTimeouts, ProblemAppRunner
from producers.views import portal_halt, record_view
from schemas.config import ConfigError, Settings, check_api_tokens
from schemas.config.loopback import is_loopback_host
from schemas.states import FINAL_STATUSES, Status
from schemas.store.calls import CallStore
from schemas.store.keys import Keys
from schemas.store.ledger import Ledger
from schemas.store.records import JobRecord, from_ms, to_ms

log = structlog.get_logger("callq.http")

PRODUCER = web.AppKey("callq.http.producer", Producer)
SETTINGS = web.AppKey("callq.http.settings", Settings)
REDIS = web.AppKey("callq.http.redis", Redis)
OPENAPI = web.AppKey("callq.http.openapi", bytes)

DEFAULT_MAX_BODY_BYTES = 64 * 1024
"""A job is a few hundred bytes (4 KiB of metadata at most); the stream intake has the same cap."""

MAX_IDENT_CHARS = 200
"""Job ids are 20-odd characters and idempotency keys at most 200: anything longer is unknown."""

SHUTDOWN_TIMEOUT_S = 5.0


class NoTokensError(ConfigError):
    """``callq serve`` was asked to start with no bearer token configured.

    Args:
        switch: how this caller turns authentication off on purpose: ``allow_no_auth=True`` from
            Python, ``--no-auth`` on the command line.
    """

    def __init__(self, switch: str = "allow_no_auth=True") -> None:
        super().__init__(
            "callq serve needs at least one bearer token (CALLQ_API_TOKENS, or api_tokens in the TOML "
            f"file); to serve without authentication on a loopback address on purpose, pass {switch}",
            key="api_tokens",
        )


class PublicNoAuthError(ConfigError):
    """Serving without authentication was asked for on an address other machines can reach."""

    def __init__(self, address: str, switch: str = "allow_no_auth=True") -> None:
        super().__init__(
            f"{switch} serves without authentication, so it is allowed only on a loopback address "
            f"(127.0.0.0/8, ::1, localhost), not {address}; configure api_tokens (CALLQ_API_TOKENS) instead",
            key="host",
        )


def create_app(
    *,
    redis: Redis,
    settings: Settings,
    cors_origins: Sequence[str] = (),
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ready_check: ReadyCheck | None = None,
    allow_no_auth: bool = False,
    config_check: ConfigCheck | None = None,
    body_timeout_s: float = DEFAULT_TIMEOUTS.body_s,
    on_call_end: OnCallEnd | None = None,
    public_urls: Sequence[str] = (),
) -> web.Application:
    """Build the HTTP application.

    Args:
        redis: the Redis client (owned by the caller, not closed here).
        settings: the loaded configuration; ``api_tokens`` are the accepted bearer tokens.
        cors_origins: browser origins allowed to call the API (exact ``scheme://host[:port]``).
        max_body_bytes: the largest request body read; larger ones get ``413``.
        ready_check: replaces the readiness check of ``/readyz`` (Redis PING and a live worker).
        allow_no_auth: serve without authentication when no token is configured.
        config_check: adds a ``config`` check to the default readiness check (``callq serve``: its
            configuration agrees with the live workers').
        body_timeout_s: a request body must arrive within this long (``408`` otherwise).
        on_call_end: told of each call's end pushed to ``POST /v1/bitrix/events/{portal}``.
        public_urls: where browsers reach the server (``scheme://host[:port]``, ``--public-url``): the
            dashboard answers only for these hosts (and loopback ones) and takes POSTs only from these
            origins (and its own loopback one); without any, it takes POSTs from its own origin.

    Returns:
        The application, ready for an ``AppRunner`` or aiohttp's test server.

    Raises:
        NoTokensError: no token is configured and ``allow_no_auth`` is False.
        ConfigError: a public URL is not ``http(s)://host[:port]``.
    """
    tokens = settings.bearer_tokens()
    if not tokens and not allow_no_auth:
        raise NoTokensError()
    check_api_tokens([token.token for token in tokens], source=None, key="api_tokens")
    app = web.Application(
        client_max_size=max_body_bytes, middlewares=[outer_middleware, host_middleware, auth_middleware]
    )
    app[GUARD] = Guard(
        tokens=tuple((token.token.encode(), token) for token in tokens),
        cors_origins=normalise_origins(cors_origins),
        max_body_bytes=max_body_bytes,
        protected=frozenset({submit, status, cancel}),
        body_timeout_s=body_timeout_s,
        public_origins=public_origins(public_urls),
    )
    app[PRODUCER] = Producer(redis, settings=settings)
    app[SETTINGS] = settings
    app[REDIS] = redis
    app[READY_CHECK] = ready_check or redis_and_worker_check(
        redis, Keys(settings.key_prefix), config=config_check
    )
    app[OPENAPI] = resources.files("schemas").joinpath("openapi.json").read_bytes()
    callbacks = app.router.add_resource("/v1/callbacks", name="callbacks")
    callbacks.add_route(hdrs.METH_POST, submit)
    callbacks.add_route(hdrs.METH_OPTIONS, preflight)
    callback = app.router.add_resource("/v1/callbacks/{id}", name="callback")
    callback.add_route(hdrs.METH_GET, status)
    callback.add_route(hdrs.METH_DELETE, cancel)
    callback.add_route(hdrs.METH_OPTIONS, preflight)
    add_event_routes(
        app,
        ledger=Ledger.for_settings(redis, settings),
        calls=CallStore.for_settings(redis, settings),
        settings=settings,
        on_call_end=on_call_end,
    )
    app.router.add_get("/healthz", healthz, name="healthz", allow_head=False)
    app.router.add_get("/readyz", readyz, name="readyz", allow_head=False)
    app.router.add_get("/openapi.json", openapi, name="openapi", allow_head=False)
    add_dashboard(app, redis=redis, settings=settings, producer=app[PRODUCER])
    return app


def public_origins(urls: Sequence[str]) -> frozenset[Origin]:
    """The origins of ``--public-url`` values.

    Raises:
        ConfigError: a value is not ``http(s)://host[:port]`` (a path is allowed and ignored).
    """
    found = set()
    for url in urls:
        origin = parse_origin(url)
        if origin is None:
            raise ConfigError(f"{url!r} is not http(s)://host[:port]", key="public-url")
        found.add(origin)
    return frozenset(found)


async def submit(request: web.Request) -> web.Response:
    """``POST /v1/callbacks``: 202 a new job (scheduled, duplicate, expired), 200 a repeat, 409 a known
    key with a different request, 422 invalid."""
    require_write(request)
    body = await read_json_body(request)
    producer = request.app[PRODUCER]
    job_id = producer.id_factory()
    try:
        submitted = await producer.submit(body, job_id=job_id, scope=caller_scope(request))
    except PortalNotAllowed as exc:
        raise HttpProblem(403, "PORTAL_NOT_ALLOWED", str(exc)) from None
    request[JOB_ID] = submitted.job_id
    if submitted.existing_job_id is not None and submitted.error is not None:
        # a known key with a different request: nothing new is made, and it is not the first job
        reused = {
            "job_id": submitted.job_id,
            "status": "rejected",
            "existing_job_id": submitted.existing_job_id,
        }
        return json_response({"error": submitted.error.to_dict(), **reused}, status=409)
    if submitted.status == Status.REJECTED:
        errors = submitted.error.fields if submitted.error else None
        return json_response(
            {"job_id": submitted.job_id, "status": "rejected", "errors": errors or []}, status=422
        )
    body_out: dict[str, Any] = {
        "job_id": submitted.job_id,
        "status": str(submitted.status),
        # At the millisecond, as stored: the same run_at that GET shows.
        "run_at": from_ms(to_ms(submitted.run_at)).isoformat() if submitted.run_at else None,
        "new": submitted.new,
    }
    if submitted.duplicate_of:
        body_out["duplicate_of"] = submitted.duplicate_of
    if submitted.error:
        body_out["error"] = submitted.error.to_dict()
    repeat = submitted.job_id != job_id
    headers = {hdrs.LOCATION: f"/v1/callbacks/{submitted.job_id}"}
    return json_response(body_out, status=200 if repeat else 202, headers=headers)


def _ident(request: web.Request) -> str:
    """The ``{id}`` of the path, refused as unknown if it cannot be a job id or idempotency key."""
    ident = request.match_info["id"]
    try:
        ident.encode("utf-8")
    except UnicodeEncodeError:
        ident = ""
    if not ident or len(ident) > MAX_IDENT_CHARS:
        raise HttpProblem(404, "NOT_FOUND", "no job with this id or idempotency key")
    return ident


async def _find(request: web.Request) -> JobRecord:
    """The job ``{id}`` names (``?portal=`` narrows a key to one portal), among those the token may
    see: a job on another portal is 404 exactly like one that does not exist."""
    ident = _ident(request)
    portal = request.query.get("portal")
    producer = request.app[PRODUCER]
    record = None
    if portal is None or portal in request.app[SETTINGS].portals:
        try:
            record = await producer.status(ident, portal=portal, scope=caller_scope(request))
        except AmbiguousKeyError as exc:
            portals = {"portals": list(exc.portals)}
            raise HttpProblem(409, "AMBIGUOUS_KEY", f"{exc}: add ?portal=NAME", extra=portals) from None
    if record is None:
        raise HttpProblem(404, "NOT_FOUND", "no job with this id or idempotency key")
    request[JOB_ID] = record.job_id
    return record


async def status(request: web.Request) -> web.Response:
    """``GET /v1/callbacks/{id}``: the job's record, with the portal's halt while it is pending."""
    record = await _find(request)
    settings = request.app[SETTINGS]
    view = record_view(record, settings=settings)
    if record.state not in FINAL_STATUSES:
        halt = await portal_halt(request.app[REDIS], settings, record.job.portal)
        if halt is not None:
            view["portal_halted"] = halt
    return json_response(view)


async def cancel(request: web.Request) -> web.Response:
    """``DELETE /v1/callbacks/{id}``: cancel a job that has not started, or the redial it waits for."""
    require_write(request)
    found = await _find(request)
    caller = request.get(CALLER)
    by = caller.name if caller is not None else "anonymous"
    cancelled, record = await request.app[PRODUCER].cancel(found.job_id, by=by)
    record = record or found
    view = record_view(record, settings=request.app[SETTINGS])
    if not cancelled:
        raise HttpProblem(
            409,
            "NOT_CANCELLABLE",
            not_cancellable(record),
            extra={"job": view},
        )
    return json_response(view)


async def openapi(request: web.Request) -> web.Response:
    """``GET /openapi.json``: the shipped OpenAPI 3.1 document, as is."""
    return web.Response(body=request.app[OPENAPI], content_type="application/json")


async def serve(
    *,
    redis: Redis,
    settings: Settings,
    host: str,
    port: int,
    cors_origins: Sequence[str] = (),
    on_ready: Callable[[Sequence[str]], None] | None = None,
    stop: asyncio.Event | None = None,
    allow_no_auth: bool = False,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    extra_routes: Sequence[web.RouteDef] = (),
    config_check: ConfigCheck | None = None,
    timeouts: ConnectionTimeouts = DEFAULT_TIMEOUTS,
    on_call_end: OnCallEnd | None = None,
    public_urls: Sequence[str] = (),
) -> None:
    """Serve the API until cancelled, or until ``stop`` is set (``callq serve``).

    Args:
        redis: the Redis client (owned by the caller).
        settings: the loaded configuration.
        host: address to bind.
        port: port to bind; 0 picks a free one.
        cors_origins: browser origins allowed to call the API.
        on_ready: called once listening with the URLs of every bound socket, as bound
            (``http://0.0.0.0:8080`` for a wildcard, the real port for port 0).
        stop: return cleanly once this event is set.
        allow_no_auth: serve without authentication when no token is configured; only on a
            loopback ``host``.
        max_body_bytes: the largest request body read.
        extra_routes: more routes without authentication (the CLI adds ``/metrics``).
        config_check: the ``config`` check of ``/readyz`` (see :func:`create_app`).
        timeouts: keep-alive, request head and body time limits.
        on_call_end: told of each call's end pushed to the events route (the CLI counts it).
        public_urls: where browsers reach the server (see :func:`create_app`).

    Raises:
        NoTokensError: no token is configured and ``allow_no_auth`` is False (before binding).
        PublicNoAuthError: ``allow_no_auth`` with a ``host`` that is not loopback (before binding),
            or a loopback name that bound another address (then nothing is served).
    """
    if allow_no_auth and not is_loopback_host(host):
        raise PublicNoAuthError(host)
    app = create_app(
        redis=redis,
        settings=settings,
        cors_origins=cors_origins,
        max_body_bytes=max_body_bytes,
        allow_no_auth=allow_no_auth,
        config_check=config_check,
        body_timeout_s=timeouts.body_s,
        on_call_end=on_call_end,
        public_urls=public_urls,
    )
    app.router.add_routes(extra_routes)
    runner = ProblemAppRunner(app, timeouts=timeouts, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = [(str(address[0]), int(address[1])) for address in runner.addresses]
        urls = [_url(*address) for address in bound]
        tokens = app[GUARD].tokens
        if not tokens and not all(is_loopback_host(address) for address, _port in bound):
            raise PublicNoAuthError(", ".join(urls))
        if not tokens:
            log.warning("http.auth_disabled", reason="no api_tokens configured and allow_no_auth=True")
        log.info(
            "http.listening",
            urls=urls,
            cors_origins=sorted(app[GUARD].cors_origins),
            callers=[token.name for _, token in tokens],
            keepalive_timeout_s=timeouts.keepalive_s,
            header_timeout_s=timeouts.header_s,
            body_timeout_s=timeouts.body_s,
        )
        if on_ready is not None:
            on_ready(urls)
        await (stop or asyncio.Event()).wait()
        log.info("http.stopping", urls=urls)
    finally:
        await runner.cleanup()


def _url(host: str, port: int) -> str:
    """``http://host:port`` of a bound socket, as bound (IPv6 in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
