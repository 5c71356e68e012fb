"""What stands between the network and the HTTP handlers: errors as JSON, the access log, CORS,
bearer tokens, and strict reading of the request body.

The handlers in :mod:`producers.http.app` stay thin because everything that is not "call the
Producer" happens here. Nothing in this module touches Redis.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import structlog
from aiohttp import hdrs, web
from aiohttp.typedefs import LooseHeaders
from aiohttp.web_protocol import RequestPayloadError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schemas.config import ApiToken
from schemas.config.loopback import is_loopback_host
from schemas.policy.redact import redact_text
from schemas.store.errors import Refusal, write_refusal

log = structlog.get_logger("callq.http")

EVENT_REQUEST = "http.request"
EVENT_ERROR = "http.error"
EVENT_REDIS_UNAVAILABLE = "http.redis_unavailable"
EVENT_REDIS_FULL = "http.redis_full"
EVENT_REDIS_REFUSES_WRITES = "http.redis_refuses_writes"

REDIS_FULL_RETRY_AFTER_S = "30"
"""Memory is freed by a person (or a retention expiry), not in a blink: clients wait longer than for a
lost connection."""

CORS_METHODS = "POST, GET, DELETE"
CORS_HEADERS = "Authorization, Content-Type"
CORS_EXPOSE = "Location, Retry-After, WWW-Authenticate"
CORS_MAX_AGE_S = 600
CHALLENGE = 'Bearer realm="callq"'

JOB_ID = web.RequestKey("callq.http.job_id", str)
"""Set by a handler that knows the job it answered about, so the access log names it."""

CALLER = web.RequestKey("callq.http.caller", ApiToken)
"""The token a request was accepted with (absent when no token is checked): its scope and log name."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Guard:
    """How requests are checked, fixed when the app is built.

    Attributes:
        tokens: the accepted bearer tokens, each as bytes with what it may do; empty means no
            token is checked (every request may do everything).
        cors_origins: origins (``scheme://host[:port]``) whose browsers may call the API.
        max_body_bytes: the largest request body read.
        body_timeout_s: a request body must arrive within this long (408 otherwise).
        protected: the handlers that need a token (the ``/v1`` ones except CORS preflights).
        public_origins: where browsers reach this server (``--public-url``): the dashboard takes
            requests for these hosts (and loopback ones) only, and POSTs from these origins.
    """

    tokens: tuple[tuple[bytes, ApiToken], ...]
    cors_origins: frozenset[str]
    max_body_bytes: int
    protected: frozenset[Handler] = field(default_factory=frozenset)
    body_timeout_s: float = 30.0
    public_origins: frozenset[Origin] = frozenset()

    @property
    def loopback_only(self) -> bool:
        """No token is checked (``--no-auth``): only requests addressed to a loopback host are served."""
        return not self.tokens


GUARD = web.AppKey("callq.http.guard", Guard)

Origin = tuple[str, str, int]
"""A web origin compared as browsers do: scheme, host (lower case, no brackets) and port."""

DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(text: str) -> Origin | None:
    """``scheme://host[:port]`` (an ``Origin`` header, a ``--public-url``) as an :data:`Origin`, or None
    for anything else (``null``, another scheme, a bad port)."""
    try:
        parts = urlsplit(text.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower().rstrip("."), port or DEFAULT_PORTS[scheme]


def request_host(request: web.Request) -> tuple[str, int | None] | None:
    """The host and port a request is addressed to (its ``Host`` header), or None if it has none or it
    cannot be read."""
    header = request.headers.get(hdrs.HOST)
    if header is None:
        return None
    try:
        parts = urlsplit(f"//{header.strip()}")
        port = parts.port
    except ValueError:
        return None
    return (parts.hostname.lower().rstrip("."), port) if parts.hostname else None


def host_allowed(request: web.Request, guard: Guard) -> bool:
    """Whether the server takes a request addressed to its ``Host``: with ``--no-auth``, a loopback
    name or address only (a DNS-rebinding page on ``evil.example`` resolving to 127.0.0.1 is refused);
    with tokens and ``--public-url``, the dashboard's pages for those hosts or loopback only; anything
    otherwise."""
    if not guard.loopback_only and not (guard.public_origins and request.path.startswith("/dashboard")):
        return True
    host = request_host(request)
    if host is None:
        return hdrs.HOST not in request.headers  # HTTP/1.0 without Host: no browser sends that
    if is_loopback_host(host[0]):
        return True
    return not guard.loopback_only and any(
        host[0] == origin[1] and (host[1] or DEFAULT_PORTS[origin[0]]) == origin[2]
        for origin in guard.public_origins
    )


def allowed_origins(request: web.Request) -> frozenset[Origin]:
    """The origins whose pages may POST to the dashboard: the ``--public-url`` ones, and the request's
    own (its scheme, its ``Host``) only when that host is loopback, or when no public URL is set (with
    ``--no-auth`` the host is loopback: :func:`host_allowed` refused any other)."""
    guard = request.app[GUARD]
    found = set(guard.public_origins)
    host = request_host(request)
    if host is not None and (not guard.public_origins or is_loopback_host(host[0])):
        scheme = request.scheme
        found.add((scheme, host[0], host[1] or DEFAULT_PORTS.get(scheme, 80)))
    return frozenset(found)


class HttpProblem(Exception):
    """An answer other than success, raised by a handler or guard and turned into JSON.

    Attributes:
        status: the HTTP status.
        code: a short upper-case code, like the ``error.code`` of an outcome.
        description: for a person.
        headers: extra response headers (``WWW-Authenticate``, ``Retry-After``).
        extra: more members of the JSON body.
        close: close the connection after the answer (the request stream is in an unknown state).
    """

    def __init__(
        self,
        status: int,
        code: str,
        description: str,
        *,
        headers: LooseHeaders | None = None,
        extra: dict[str, Any] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(f"{status} {code}: {description}")
        self.status, self.code, self.description = status, code, description
        self.headers = headers
        self.extra = extra or {}
        self.close = close

    def response(self) -> web.Response:
        """The JSON answer: ``{"error": {"code", "description"}, ...extra}``."""
        body = {**problem_body(self.code, self.description), **self.extra}
        response = json_response(body, status=self.status, headers=self.headers)
        if self.close:
            response.force_close()
        return response


def problem_body(code: str, description: str) -> dict[str, Any]:
    """The body of every error answer: ``{"error": {"code", "description"}}``."""
    return {"error": {"code": code, "description": description}}


def json_response(data: Any, *, status: int = 200, headers: LooseHeaders | None = None) -> web.Response:
    """A JSON answer. ASCII-escaped, so any text that reached Redis can be written back."""
    return web.json_response(data, status=status, headers=headers)


# Codes for the answers aiohttp raises itself (no route, wrong method, body over the limit).
_AIOHTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}
_KEPT_HEADERS = (hdrs.ALLOW, hdrs.WWW_AUTHENTICATE, hdrs.RETRY_AFTER)


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    code = _AIOHTTP_CODES.get(exc.status, exc.reason.upper().replace(" ", "_"))
    headers = {name: exc.headers[name] for name in _KEPT_HEADERS if name in exc.headers}
    return HttpProblem(exc.status, code, exc.reason, headers=headers).response()


def _log_path(request: web.Request) -> str:
    """The route template when one matched (an id in the path may be anything, even a number);
    otherwise the path with anything that could be a phone number masked."""
    resource = request.match_info.route.resource
    if resource is not None:
        return resource.canonical
    return redact_text(request.path)[:200]


REFUSED_WRITES = {
    Refusal.FULL: "Redis is full and refuses writes; nothing was stored, try again later",
    Refusal.MISCONF: "Redis cannot save its snapshot and refuses writes; nothing was stored, try again later",
    Refusal.READONLY: "Redis is a read-only replica and refuses writes; nothing was stored, try again later",
    Refusal.NOREPLICAS: "Redis has too few replicas and refuses writes; nothing was stored, try again later",
}
"""What a client is told, by reason (``REDIS_FULL``, else ``REDIS_REFUSES_WRITES`` with the reason)."""


def refused_writes(request: web.Request, refusal: Refusal) -> web.Response:
    """503 with ``Retry-After`` for a request Redis refused to store: ``REDIS_FULL`` for a full Redis,
    ``REDIS_REFUSES_WRITES`` (with ``reason``) for the other refusals; logged as one line."""
    headers = {hdrs.RETRY_AFTER: REDIS_FULL_RETRY_AFTER_S}
    if refusal is Refusal.FULL:
        log.warning(EVENT_REDIS_FULL, method=request.method, path=_log_path(request))
        return HttpProblem(503, "REDIS_FULL", REFUSED_WRITES[refusal], headers=headers).response()
    log.warning(
        EVENT_REDIS_REFUSES_WRITES, reason=str(refusal), method=request.method, path=_log_path(request)
    )
    problem = HttpProblem(
        503, "REDIS_REFUSES_WRITES", REFUSED_WRITES[refusal], headers=headers, extra={"reason": str(refusal)}
    )
    return problem.response()


@web.middleware
async def outer_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer every failure as JSON, add CORS headers for allowed origins, log one line per request.

    Redis being unreachable or refusing writes is the only expected 5xx (503 ``UNAVAILABLE``,
    ``REDIS_FULL`` or ``REDIS_REFUSES_WRITES``, with ``Retry-After``); anything else that escapes a handler is a bug, answered 500 and logged
    with its traceback.
    """
    started = time.perf_counter()
    response: web.StreamResponse
    code: str | None = None
    try:
        response = await handler(request)
    except HttpProblem as problem:
        response, code = problem.response(), problem.code
    except web.HTTPException as exc:
        response = _from_http_exception(exc)
    except (RedisConnectionError, RedisTimeoutError) as exc:
        log.warning(EVENT_REDIS_UNAVAILABLE, error=type(exc).__name__)
        response = HttpProblem(
            503, "UNAVAILABLE", "Redis is unavailable; try again shortly", headers={hdrs.RETRY_AFTER: "5"}
        ).response()
    except Exception as exc:
        refusal = write_refusal(exc)
        if refusal is None:
            log.exception(EVENT_ERROR, method=request.method, path=_log_path(request))
            response = HttpProblem(500, "INTERNAL", "internal error").response()
        else:
            # nothing was stored (Redis refuses a write whole): the client may send it again later
            response = refused_writes(request, refusal)
    _add_cors_headers(request, response, request.app[GUARD].cors_origins)
    log.info(
        EVENT_REQUEST,
        method=request.method,
        path=_log_path(request),
        status=response.status,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
        job_id=request.get(JOB_ID),
        caller=caller.name if (caller := request.get(CALLER)) else None,
        code=code,
    )
    return response


def _add_cors_headers(request: web.Request, response: web.StreamResponse, origins: frozenset[str]) -> None:
    if not origins:
        return
    response.headers.add(hdrs.VARY, hdrs.ORIGIN)  # the answer depends on Origin: caches must know
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and origin in origins:
        response.headers[hdrs.ACCESS_CONTROL_ALLOW_ORIGIN] = origin
        response.headers[hdrs.ACCESS_CONTROL_EXPOSE_HEADERS] = CORS_EXPOSE


def normalise_origins(origins: Sequence[str]) -> frozenset[str]:
    """Origins as browsers send them: no trailing slash."""
    return frozenset(origin.strip().rstrip("/") for origin in origins if origin.strip())


async def preflight(request: web.Request) -> web.Response:
    """``OPTIONS``: a CORS preflight from an allowed origin gets 204 with what may be sent; from
    any other origin 403 without CORS headers. A plain ``OPTIONS`` (no Origin) lists the methods."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is None:
        methods = sorted({route.method for route in request.match_info.route.resource or ()})
        return web.Response(status=204, headers={hdrs.ALLOW: ", ".join(methods)})
    if origin not in request.app[GUARD].cors_origins:
        raise HttpProblem(403, "ORIGIN_NOT_ALLOWED", "this origin may not call the API from a browser")
    return web.Response(
        status=204,
        headers={
            hdrs.ACCESS_CONTROL_ALLOW_METHODS: CORS_METHODS,
            hdrs.ACCESS_CONTROL_ALLOW_HEADERS: CORS_HEADERS,
            hdrs.ACCESS_CONTROL_MAX_AGE: str(CORS_MAX_AGE_S),
        },
    )


def match_token(given: bytes, tokens: Sequence[tuple[bytes, ApiToken]]) -> ApiToken | None:
    """The token ``given`` is, compared in constant time against every one (no early exit that
    would time which one matched)."""
    found: ApiToken | None = None
    for secret, token in tokens:
        if hmac.compare_digest(given, secret):
            found = token
    return found


@web.middleware
async def host_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse (``421``) a request addressed to a host this server does not answer for
    (:func:`host_allowed`): DNS rebinding turns a browser on any page into a client of a loopback
    server, and only the ``Host`` header tells."""
    if not host_allowed(request, request.app[GUARD]):
        raise HttpProblem(
            421,
            "MISDIRECTED_REQUEST",
            "this server does not answer for that host: use its loopback address or its public URL",
        )
    return await handler(request)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Require ``Authorization: Bearer <token>`` on the protected routes (RFC 6750 answers).

    The token found is put in ``request[CALLER]``; the handlers check its scope (which portals,
    read or write) against what the request asks for.
    """
    guard = request.app[GUARD]
    if not guard.tokens or request.match_info.handler not in guard.protected:
        return await handler(request)
    header = request.headers.get(hdrs.AUTHORIZATION)
    if header is None:
        raise HttpProblem(
            401,
            "UNAUTHORIZED",
            "a bearer token is required (Authorization: Bearer <token>)",
            headers={hdrs.WWW_AUTHENTICATE: CHALLENGE},
        )
    scheme, _, token = header.strip().partition(" ")
    # Headers arrive decoded as UTF-8 with surrogateescape; encoding back gives the bytes sent.
    given = token.strip().encode("utf-8", "surrogateescape")
    caller = match_token(given, guard.tokens) if scheme.lower() == "bearer" and given else None
    if caller is None:
        raise HttpProblem(
            401,
            "UNAUTHORIZED",
            "the bearer token is missing or not accepted",
            headers={hdrs.WWW_AUTHENTICATE: f'{CHALLENGE}, error="invalid_token"'},
        )
    request[CALLER] = caller
    return await handler(request)


def caller_scope(request: web.Request) -> frozenset[str] | None:
    """The portals the request's token may use (None: every one, or no token is checked)."""
    caller = request.get(CALLER)
    return caller.portals if caller is not None else None


def require_write(request: web.Request) -> None:
    """Refuse (403 ``FORBIDDEN``) a submit or cancel with a token that may only read."""
    caller = request.get(CALLER)
    if caller is not None and not caller.may_write:
        raise HttpProblem(403, "FORBIDDEN", 'this token may only read (access = "read")')


DECODED_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
"""The ``Content-Encoding`` values a body may have: aiohttp decodes these (``br`` only with the
optional brotli package, which callq does not require: refused like any other)."""
UNSUPPORTED_ENCODING = "UNSUPPORTED_CONTENT_ENCODING"
UNSUPPORTED_ENCODING_DESCRIPTION = "send the body uncompressed, or with Content-Encoding: gzip or deflate"


async def read_json_body(request: web.Request) -> bytes:
    """The body of a JSON request, at most ``max_body_bytes``, within ``body_timeout_s``.

    Raises:
        HttpProblem: 413 over the limit (by Content-Length, or counted while reading a chunked or
            compressed body), 415 unless the Content-Type is ``application/json`` in UTF-8 and the
            Content-Encoding one of :data:`DECODED_ENCODINGS`, 400 if
            the body cannot be decoded (a ``Content-Encoding`` or chunked framing it does not have)
            or the client went away before sending it all, 408 if it did not arrive in time. None
            of these quotes what was sent, and none is logged with a traceback.
    """
    guard = request.app[GUARD]
    limit = guard.max_body_bytes
    too_large = HttpProblem(413, "PAYLOAD_TOO_LARGE", f"the body is over {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    charset = (request.charset or "utf-8").lower()
    if (
        hdrs.CONTENT_TYPE not in request.headers
        or request.content_type != "application/json"
        or charset not in ("utf-8", "utf8")
    ):
        raise HttpProblem(415, "UNSUPPORTED_MEDIA_TYPE", "send Content-Type: application/json (UTF-8)")
    headers = request.headers.getall(hdrs.CONTENT_ENCODING, [])
    if any(enc.strip().lower() not in DECODED_ENCODINGS for header in headers for enc in header.split(",")):
        raise HttpProblem(415, UNSUPPORTED_ENCODING, UNSUPPORTED_ENCODING_DESCRIPTION, close=True)
    try:
        async with asyncio.timeout(guard.body_timeout_s):
            return await request.read()  # the app's client_max_size counts the bytes as they come
    except web.HTTPRequestEntityTooLarge:
        raise too_large from None
    except TimeoutError:
        raise HttpProblem(
            408, "REQUEST_TIMEOUT", f"the body did not arrive within {guard.body_timeout_s:g} s", close=True
        ) from None
    except RequestPayloadError:
        broken = "the body could not be read as sent (its Content-Encoding or chunked framing is broken)"
        raise HttpProblem(400, "BAD_BODY", broken, close=True) from None
    except ConnectionError:
        raise HttpProblem(
            400, "CLIENT_DISCONNECTED", "the connection closed before the body arrived"
        ) from None
