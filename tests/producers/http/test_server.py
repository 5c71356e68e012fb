"""`callq serve` over raw sockets: malformed HTTP, broken bodies, disconnects and slow clients all get a
4xx JSON problem (or a closed connection) that quotes nothing they sent, and no traceback is logged."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from typing import Any

import pytest
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from redis.asyncio import Redis
from structlog.testing import capture_logs

from ops.sandbox import SandboxHandle
from producers.http.server import ConnectionTimeouts, ProblemAppRunner
from schemas.config import Settings
from tests.support.helpers import make_settings, sandbox_portal, serve_on_free_port, wait_for

TOKEN = "raw-token-0123456789"
JOB = json.dumps({"from_line": "reg1332", "to_number": "+79111234567", "text_to_pronounce": "Hi"}).encode()
MARK = b"ECHOME"
"""Put in every malformed request: an answer that quotes the request would contain it."""


@pytest.fixture
def settings(redis_url: str, prefix: str, portal: SandboxHandle) -> Settings:
    """One sandbox portal and a bearer token."""
    portals = {"default": sandbox_portal(portal.webhook_url("default"))}
    return make_settings(redis_url, prefix, portals, api_tokens=(TOKEN,))


async def exchange(address: tuple[str, int], data: bytes, *, timeout_s: float = 5) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()


def parse(answer: bytes) -> tuple[int, dict[str, str], Any]:
    """(status, headers with lower-case names, JSON body) of one HTTP answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


def assert_problem(answer: bytes, status: int, code: str) -> None:
    """A JSON problem with this status and code, quoting nothing sent (``exchange`` read it to the end:
    the server closed the connection)."""
    got, headers, body = parse(answer)
    assert (got, body["error"]["code"]) == (status, code), answer
    assert set(body) == {"error"} and set(body["error"]) == {"code", "description"}
    assert headers["content-type"].startswith("application/json")
    assert MARK not in answer and MARK.lower() not in answer.lower()


def post(body: bytes, *extra: bytes, length: int | None = None) -> bytes:
    """A POST /v1/callbacks head (with the token) and ``body``."""
    head = [
        b"POST /v1/callbacks HTTP/1.1",
        b"Host: x",
        f"Authorization: Bearer {TOKEN}".encode(),
        b"Content-Type: application/json",
        b"Content-Length: %d" % (len(body) if length is None else length),
        *extra,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


MALFORMED = {
    "control character in the method": b"GE\x00T" + MARK + b" / HTTP/1.1\r\nHost: x\r\n\r\n",
    "control character in the path": b"GET /v1/" + MARK + b"\x01 HTTP/1.1\r\nHost: x\r\n\r\n",
    "space in a header name": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX " + MARK + b": 1\r\n\r\n",
    "NUL in a header value": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + MARK + b"\x00\r\n\r\n",
    "bad version": b"GET /healthz HTTP/9." + MARK + b"\r\nHost: x\r\n\r\n",
    "not HTTP at all": MARK + b"\r\n\r\n",
    "TLS on the HTTP port": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + MARK + b"\r\n\r\n",
    "bad chunk size": b"POST /v1/callbacks HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ"
    + MARK
    + b"\r\n",
    "two Content-Length": post(JOB, b"Content-Length: 3" + MARK),
}


@pytest.mark.parametrize("data", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_malformed_http_is_a_json_400_that_quotes_nothing(
    data: bytes, redis: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Each malformed request gets a JSON 400 BAD_REQUEST and one log line without a traceback."""
    async with serve_on_free_port(redis, settings) as address:
        with capture_logs() as logs, caplog.at_level(logging.DEBUG, logger="aiohttp"):
            answer = await exchange(address, data)
    assert_problem(answer, 400, "BAD_REQUEST")
    assert [entry["event"] for entry in logs] == ["http.bad_request"]
    assert "exc_info" not in logs[0] and "exception" not in logs[0]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"GET /v1/callbacks/" + MARK + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414, "URI_TOO_LONG"),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + MARK + b"a" * 9000 + b"\r\n\r\n",
            431,
            "HEADER_TOO_LARGE",
        ),
        (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-" + MARK + b"a" * 9000 + b": 1\r\n\r\n",
            431,
            "HEADER_TOO_LARGE",
        ),
    ],
    ids=["path", "header value", "header name"],
)
async def test_over_long_lines_are_json_414_or_431(
    data: bytes, status: int, code: str, redis: Redis, settings: Settings
) -> None:
    """A request line over 4 KiB is a JSON 414, a header line over 8 KiB a JSON 431; neither is echoed."""
    async with serve_on_free_port(redis, settings) as address:
        answer = await exchange(address, data)
    assert_problem(answer, status, code)


async def test_a_body_that_is_not_its_content_encoding_is_a_json_400(
    redis: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """``Content-Encoding: gzip`` over bytes that are not gzip: JSON 400 BAD_BODY, no traceback anywhere."""
    async with serve_on_free_port(redis, settings) as address:
        with capture_logs() as logs, caplog.at_level(logging.DEBUG, logger="aiohttp"):
            answer = await exchange(address, post(MARK + JOB, b"Content-Encoding: gzip"))
    assert_problem(answer, 400, "BAD_BODY")
    assert not [e for e in logs if e.get("log_level") in ("error", "critical") or "exc_info" in e]
    assert [e["status"] for e in logs if e["event"] == "http.request"] == [400]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


async def test_a_client_that_leaves_mid_body_is_logged_without_a_traceback(
    redis: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that closes the connection half-way through its body: one 400 access line, no traceback."""
    async with serve_on_free_port(redis, settings) as address:
        with capture_logs() as logs, caplog.at_level(logging.DEBUG, logger="aiohttp"):
            _reader, writer = await asyncio.open_connection(*address)
            writer.write(post(JOB[:10], length=len(JOB)))
            await writer.drain()
            writer.close()
            await writer.wait_closed()

            async def logged() -> bool:
                return any(e["event"] == "http.request" for e in logs)

            await wait_for(logged, timeout_s=5, what="the access line")
    requests = [e for e in logs if e["event"] == "http.request"]
    assert [(e["status"], e.get("code")) for e in requests] == [(400, "CLIENT_DISCONNECTED")]
    assert not [e for e in logs if e.get("log_level") in ("error", "critical") or "exc_info" in e]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


SHORT = ConnectionTimeouts(keepalive_s=0.6, header_s=0.5, body_s=0.5)


async def test_a_slowloris_head_is_cut_off_with_408(redis: Redis, settings: Settings) -> None:
    """A head sent one byte every 0.1 s gets a JSON 408 and a closed connection within the header timeout."""
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    async with serve_on_free_port(redis, settings, SHORT) as address:
        reader, writer = await asyncio.open_connection(*address)
        started = time.monotonic()
        answer = b""
        try:
            for byte in head:
                writer.write(bytes([byte]))
                await writer.drain()
                with contextlib.suppress(TimeoutError):
                    answer += await asyncio.wait_for(reader.read(65536), 0.1)
                if answer:
                    break
            answer += await asyncio.wait_for(reader.read(), 2)
        finally:
            writer.close()
        took_s = time.monotonic() - started
    assert_problem(answer, 408, "REQUEST_TIMEOUT")
    assert SHORT.header_s - 0.1 <= took_s < SHORT.header_s + 1.5, took_s  # the server's clock starts first


async def test_a_connection_that_sends_nothing_is_closed(redis: Redis, settings: Settings) -> None:
    """A client that connects and sends nothing gets a JSON 408 after the header timeout."""
    async with serve_on_free_port(redis, settings, SHORT) as address:
        started = time.monotonic()
        answer = await exchange(address, b"")
        took_s = time.monotonic() - started
    assert_problem(answer, 408, "REQUEST_TIMEOUT")
    assert took_s < SHORT.header_s + 1.5


async def test_a_body_that_never_completes_is_cut_off_with_408(redis: Redis, settings: Settings) -> None:
    """A body announced by Content-Length that stops half-way: JSON 408 and a closed connection."""
    async with serve_on_free_port(redis, settings, SHORT) as address:
        started = time.monotonic()
        answer = await exchange(address, post(JOB[:10], length=len(JOB)))
        took_s = time.monotonic() - started
    assert_problem(answer, 408, "REQUEST_TIMEOUT")
    assert SHORT.body_s <= took_s < SHORT.body_s + 1.5, took_s


async def test_an_idle_kept_alive_connection_is_closed(redis: Redis, settings: Settings) -> None:
    """After an answer, a connection left idle is closed once the keep-alive timeout passes."""
    async with serve_on_free_port(redis, settings, SHORT) as address:
        reader, writer = await asyncio.open_connection(*address)
        try:
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
            assert head.startswith(b"HTTP/1.1 200")
            answered = time.monotonic()
            rest = await asyncio.wait_for(reader.read(), 5)  # the body, then EOF when the server closes
            took_s = time.monotonic() - answered
        finally:
            writer.close()
    assert json.loads(rest) == {"status": "ok"}
    assert SHORT.keepalive_s - 0.1 <= took_s < SHORT.keepalive_s + 1.5, took_s


async def test_a_kept_alive_connection_serves_a_second_request(redis: Redis, settings: Settings) -> None:
    """Timeouts do not cut a well-behaved client: two requests on one connection both answer 200."""
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    async with serve_on_free_port(redis, settings, SHORT) as address:
        reader, writer = await asyncio.open_connection(*address)
        try:
            for _ in range(2):
                writer.write(request)
                await writer.drain()
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2)
                assert head.startswith(b"HTTP/1.1 200")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                await reader.readexactly(length)
                await asyncio.sleep(SHORT.header_s / 2)  # idle, under the keep-alive timeout
        finally:
            writer.close()


def test_the_aiohttp_internals_it_relies_on_are_there() -> None:
    """An aiohttp upgrade that changes them must fail here (producers/http/server.py names each)."""
    assert list(inspect.signature(RequestHandler.handle_error).parameters) == [
        "self",
        "request",
        "status",
        "exc",
        "message",
    ]
    assert list(inspect.signature(RequestHandler.finish_response).parameters) == [
        "self",
        "request",
        "resp",
        "start_time",
    ]
    for name in ("connection_made", "data_received", "connection_lost", "log_exception", "force_close"):
        assert callable(getattr(RequestHandler, name))
    for slot in ("_request_count", "_waiter", "max_line_size", "max_field_size"):
        assert slot in RequestHandler.__slots__
    init = inspect.getsource(web.Server.__init__)
    assert "self._kwargs = kwargs" in init and "self._loop" in init
    for attribute in ("self.request_handler", "self.request_factory", "self.handler_cancellation"):
        assert attribute in init
    assert "_make_server" in web.AppRunner.__dict__
    assert issubclass(ProblemAppRunner, web.AppRunner)


@pytest.mark.parametrize("encoding", [b"br", b"compress", b"x-unknown", b"gzip, br", b"zstd"])
async def test_an_unsupported_content_encoding_is_a_json_415(
    encoding: bytes, redis: Redis, settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """A body in an encoding callq does not decode (only gzip, deflate, identity) is a JSON 415, no traceback."""
    async with serve_on_free_port(redis, settings) as address:
        with caplog.at_level(logging.DEBUG, logger="aiohttp"):
            answer = await exchange(address, post(MARK + JOB, b"Content-Encoding: " + encoding))
    assert_problem(answer, 415, "UNSUPPORTED_CONTENT_ENCODING")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


async def test_too_many_headers_is_a_json_431(redis: Redis, settings: Settings) -> None:
    """A request with more header lines than allowed is a JSON 431 that quotes none of them."""
    headers = b"".join(b"X-%d: %s\r\n" % (i, MARK) for i in range(200))
    async with serve_on_free_port(redis, settings) as address:
        answer = await exchange(address, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    assert_problem(answer, 431, "HEADER_TOO_LARGE")
