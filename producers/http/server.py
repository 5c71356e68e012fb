"""``callq serve``'s HTTP server below the application: the answers aiohttp gives by itself, and how
long a connection may take.

aiohttp answers a request that never reaches the application (a bad request line, a bad or
over-long header, control characters, HTTPS on the HTTP port) from its protocol class,
``web_protocol.RequestHandler.handle_error``, with a plain-text 400 that quotes the raw bytes; it
logs the parser's traceback at error level; and it waits for a request head without any time limit.
Here every such answer is the API's JSON problem (``{"error": {"code", "description"}}``) that
quotes nothing the client sent, input errors are logged as one line without a traceback, and:

- a request head (request line and headers) must arrive within ``header_s`` of the connection
  opening or of its first byte on a kept-alive connection, else ``408`` and the connection closes
  (a slowloris sending a byte every few seconds is cut off);
- an idle kept-alive connection closes after ``keepalive_s``;
- a request body the API reads must arrive within ``body_s`` (``408``, :mod:`producers.http.guards`);
  one it does not read is drained for at most ``LINGER_S`` after the answer, then the connection closes.

This is the one module that knows aiohttp's protocol internals (aiohttp >= 3.10, < 4); each is
exercised by ``tests/producers/http/test_server.py``:

- ``web.Server.__call__`` makes the protocol of each connection from ``Server._kwargs`` and
  ``Server._loop``; ``Server.request_handler``, ``request_factory`` and ``handler_cancellation``;
- ``web.AppRunner._make_server`` builds that server (after the application's startup), and its
  ``request_handler`` (the application's dispatch, which runs a route's ``expect_handler`` before
  any middleware: :func:`expecting_only_continue` answers an odd ``Expect`` first);
- ``RequestHandler.handle_error(request, status, exc, message)``: the answer to a request the
  parser refused (``data_received`` queues it) or a handler crash; ``log_exception``: how the
  protocol logs what else went wrong (a body that failed to decode while it was being drained);
  ``finish_response(request, resp, start_time)``: writes each answer, before the unread rest of
  the body is drained (``lingering_time``);
- ``RequestHandler.connection_made``, ``data_received``, ``force_close``, ``transport``,
  ``max_line_size`` and the private ``_request_count`` (messages parsed so far) and ``_waiter`` (set
  while the connection waits for the next request head).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11
from aiohttp.http_exceptions import BadHttpMessage, ContentEncodingError, HttpProcessingError, LineTooLong
from aiohttp.web_protocol import RequestHandler, RequestPayloadError
from aiohttp.web_request import BaseRequest

from producers.http.guards import UNSUPPORTED_ENCODING, UNSUPPORTED_ENCODING_DESCRIPTION, problem_body

log = structlog.get_logger("callq.http")

EVENT_BAD_REQUEST = "http.bad_request"
EVENT_HEADER_TIMEOUT = "http.header_timeout"
EVENT_BODY_ABANDONED = "http.body_abandoned"
EVENT_SERVER_ERROR = "http.server_error"

MAX_REQUEST_LINE_BYTES = 4096
"""callq's longest path is ``/v1/callbacks/`` and a 200-character id: 4 KiB is plenty (414 over it)."""
MAX_HEADER_BYTES = 8190
"""One header line (name and value), aiohttp's default (431 over it)."""
MAX_HEADERS = 128
"""Header lines in one request, aiohttp's default (431 over it; aiohttp says so only in its message)."""
TOO_MANY_HEADERS = ("Too many headers", "Too many trailers")
"""How aiohttp's parsers (C and Python) word a request over ``max_headers``: it has no class for it."""
LINGER_S = 5.0
"""How long a body the API did not read is drained after the answer before the connection closes."""


@dataclass(frozen=True)
class ConnectionTimeouts:
    """How long a client may take (``callq serve --keepalive-timeout/--header-timeout/--body-timeout``).

    Attributes:
        keepalive_s: an idle connection between requests is closed after this long. Above the
            60 s idle timeout of common load balancers, so that they, not callq, close first.
        header_s: the request line and headers must arrive within this long.
        body_s: a request body the API reads must arrive within this long.
    """

    keepalive_s: float = 75.0
    header_s: float = 10.0
    body_s: float = 30.0

    def __post_init__(self) -> None:
        for name in ("keepalive_s", "header_s", "body_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")


DEFAULT_TIMEOUTS = ConnectionTimeouts()


def raw_problem(status: int, reason: str, code: str, description: str) -> bytes:
    """A complete HTTP/1.1 JSON problem answer that closes the connection, for the protocol level
    (where no request object exists yet)."""
    body = json.dumps(problem_body(code, description)).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


class ProblemRequestHandler(RequestHandler):
    """aiohttp's protocol with JSON problem answers and a time limit on each request head."""

    def __init__(self, manager: web.Server, *, header_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout_s = header_timeout_s
        self._head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm_head_timer()  # the first request head, from the moment the client connects

    def data_received(self, data: bytes) -> None:
        parsed = self._request_count
        super().data_received(data)
        if self._request_count > parsed:
            self._disarm_head_timer()  # a head is complete (or refused: answered below)
        elif data and self._head_timer is None and self._waiting_for_head():
            self._arm_head_timer()  # the first bytes of the next head on a kept-alive connection

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm_head_timer()
        super().connection_lost(exc)

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        """The JSON problem for a request the parser refused (or, a bug, a handler that crashed)."""
        status, code, description = self._problem(status, exc)
        if status >= 500:
            log.error(
                EVENT_SERVER_ERROR, status=status, error=type(exc).__name__ if exc else None, exc_info=exc
            )
        else:
            log.info(EVENT_BAD_REQUEST, status=status, code=code, error=type(exc).__name__ if exc else None)
        if request.writer.output_size > 0:  # part of an answer is out: nothing more can be said
            raise ConnectionError("the answer had started; closing the connection")
        response = web.json_response(problem_body(code, description), status=status)
        response.force_close()
        return response

    async def finish_response(
        self, request: BaseRequest, resp: web.StreamResponse, start_time: float | None
    ) -> tuple[web.StreamResponse, bool]:
        """Write the answer; after a ``408`` close at once instead of draining the rest of a body that
        was too slow to come (RFC 9110: a 408 closes the connection)."""
        answered = await super().finish_response(request, resp, start_time)
        if resp.status == 408:
            self.force_close()
        return answered

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        """A body the client broke (bad encoding, connection gone) while it was drained is the
        client's problem: one line, no traceback. Anything else is aiohttp's to report."""
        exc = kwargs.get("exc_info")
        if isinstance(exc, RequestPayloadError | ConnectionError | HttpProcessingError):
            log.info(EVENT_BODY_ABANDONED, error=type(exc).__name__)
            return
        super().log_exception(*args, **kwargs)

    def _problem(self, status: int, exc: BaseException | None) -> tuple[int, str, str]:
        if isinstance(exc, LineTooLong):
            if len(exc.args) > 1 and exc.args[1] == self.max_line_size:
                return 414, "URI_TOO_LONG", f"the request line is over {self.max_line_size} bytes"
            return 431, "HEADER_TOO_LARGE", f"a header line is over {self.max_field_size} bytes"
        if isinstance(exc, BadHttpMessage) and str(exc.message).startswith(TOO_MANY_HEADERS):
            return 431, "HEADER_TOO_LARGE", f"over {MAX_HEADERS} header lines"
        if isinstance(exc, ContentEncodingError):  # one aiohttp cannot decode (br without brotli)
            return 415, UNSUPPORTED_ENCODING, UNSUPPORTED_ENCODING_DESCRIPTION
        if isinstance(exc, HttpProcessingError) or status == 400:
            return 400, "BAD_REQUEST", "the request is not valid HTTP/1.1"
        if status == 504:
            return 504, "TIMEOUT", "the request took too long to answer"
        return 500, "INTERNAL", "internal error"

    def _waiting_for_head(self) -> bool:
        waiter = self._waiter
        return waiter is not None and not waiter.done()

    def _arm_head_timer(self) -> None:
        self._disarm_head_timer()
        self._head_timer = self._loop.call_later(self._header_timeout_s, self._head_timed_out)

    def _disarm_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        transport = self.transport
        if transport is None or not self._waiting_for_head():
            return  # closed, or a request is being answered: its own limits apply
        log.info(EVENT_HEADER_TIMEOUT, timeout_s=self._header_timeout_s)
        description = f"the request line and headers did not arrive within {self._header_timeout_s:g} s"
        transport.write(raw_problem(408, "Request Timeout", "REQUEST_TIMEOUT", description))
        self.force_close()


Handler = Callable[[BaseRequest], Awaitable[web.StreamResponse]]


def expecting_only_continue(handler: Handler) -> Handler:
    """``handler``, with an ``Expect`` header other than ``100-continue`` answered ``417`` as a JSON
    problem first. aiohttp's own answer (from a route's ``expect_handler``, which runs before any
    middleware) quotes the header and crashes with a 500 on one that is not UTF-8."""

    async def handle(request: BaseRequest) -> web.StreamResponse:
        expect = request.headers.get(hdrs.EXPECT)
        if expect is not None and request.version == HttpVersion11 and expect.lower() != "100-continue":
            return web.json_response(
                problem_body("EXPECTATION_FAILED", "only Expect: 100-continue is understood"), status=417
            )
        return await handler(request)

    return handle


class ProblemServer(web.Server):
    """aiohttp's low-level server whose connections use :class:`ProblemRequestHandler`."""

    def __call__(self) -> RequestHandler:
        return ProblemRequestHandler(self, loop=self._loop, **self._kwargs)


class ProblemAppRunner(web.AppRunner):
    """An ``AppRunner`` serving the application through :class:`ProblemServer`.

    Args:
        app: the application.
        timeouts: keep-alive and request head limits (the body limit is the application's).
        access_log: aiohttp's access logger (None: callq logs requests itself).
        kwargs: more ``AppRunner`` arguments (``shutdown_timeout``).
    """

    def __init__(
        self,
        app: web.Application,
        *,
        timeouts: ConnectionTimeouts = DEFAULT_TIMEOUTS,
        access_log: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(app, **kwargs)
        self._protocol_kwargs: dict[str, Any] = {
            "keepalive_timeout": timeouts.keepalive_s,
            "header_timeout_s": timeouts.header_s,
            "lingering_time": LINGER_S,
            "max_line_size": MAX_REQUEST_LINE_BYTES,
            "max_field_size": MAX_HEADER_BYTES,
            "max_headers": MAX_HEADERS,
            "access_log": access_log,
        }

    async def _make_server(self) -> web.Server:
        plain = await super()._make_server()  # runs the application's startup, freezes it
        return ProblemServer(
            expecting_only_continue(plain.request_handler),
            request_factory=plain.request_factory,
            handler_cancellation=plain.handler_cancellation,
            **self._protocol_kwargs,
        )
