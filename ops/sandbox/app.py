"""The aiohttp application: the `/rest/...` routes, the OAuth token endpoint, the control API.

Request parameters are read like Bitrix24 reads them: query-string values merged with the
body, the body winning; the body may be JSON (`Content-Type: application/json`), urlencoded
or multipart form. A JSON body that does not decode to an object is ignored, as Bitrix24
ignores an undecodable body (the method then sees no parameters). Form keys are taken flat:
PHP-style nested keys (`fields[PHONE][0]`) are not expanded, which callback.start never needs.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from ops.sandbox.calls import event_form
from ops.sandbox.control import control_routes
from ops.sandbox.oauth import TOKEN_PATHS
from ops.sandbox.reply import Reply, ReplyAction

if TYPE_CHECKING:
    from ops.sandbox.state import Sandbox

# How often a hanging request checks whether its client went away; only matters when the
# server was not started with handler cancellation (running_sandbox does cancel handlers).
_DISCONNECT_POLL_S = 0.05
_PUSH_EVERY_S = 0.1


def create_app(sandbox: Sandbox) -> web.Application:
    """Build the aiohttp application serving `sandbox`.

    Args:
        sandbox: The state every request reads and updates.

    Returns:
        The application; on shutdown it releases hanging requests by dropping their connections.
    """
    app = web.Application()
    stopping = asyncio.Event()

    async def handle_webhook(request: web.Request) -> web.StreamResponse:
        info = request.match_info
        params = await read_params(request)
        reply = sandbox.dispatch(
            info["user_id"], info["code"], info["method"], params, host=request.host, path=request.path
        )
        return await _carry_out(request, sandbox, reply, stopping)

    async def handle_oauth_form(request: web.Request) -> web.StreamResponse:
        # `/rest/METHOD` with the access token as `auth` (JSON body, form or query)
        params = await read_params(request)
        reply = sandbox.dispatch_oauth(
            request.match_info["method"], params, host=request.host, path=request.path
        )
        return await _carry_out(request, sandbox, reply, stopping)

    async def handle_token(request: web.Request) -> web.StreamResponse:
        params = await read_params(request)
        status, body = sandbox.oauth_token(params, base_url=str(request.url.origin()))
        return web.json_response(body, status=status)

    async def release_hanging(_app: web.Application) -> None:
        stopping.set()

    async def push_call_ends(_app: web.Application) -> AsyncIterator[None]:
        # OnVoximplantCallEnd to every handler bound, once each call ended (a failed POST is dropped,
        # as Bitrix24 gives up on an unreachable handler)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:

            async def push_loop() -> None:
                while True:
                    await asyncio.sleep(_PUSH_EVERY_S)
                    for call, handler in sandbox.player.due_pushes(now=time.time()):
                        form = event_form(call, handler, domain=f"{call.portal}.sandbox.local")
                        with suppress(aiohttp.ClientError, TimeoutError, OSError):
                            async with session.post(handler.url, data=form) as response:
                                await response.read()

            task = asyncio.create_task(push_loop())
            yield
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task

    app.router.add_route("*", "/rest/{user_id}/{code}/{method:[^/]*}", handle_webhook)
    app.router.add_route("*", "/rest/{method:[^/]+}", handle_oauth_form)
    for path in TOKEN_PATHS:  # Bitrix24 documents GET; POST with the same parameters works too
        app.router.add_get(path, handle_token)
        app.router.add_post(path, handle_token)
    app.router.add_routes(control_routes(sandbox))
    app.on_shutdown.append(release_hanging)
    app.cleanup_ctx.append(push_call_ends)
    return app


async def read_params(request: web.Request) -> dict[str, Any]:
    """Return the request's parameters: the query string merged with the body.

    Args:
        request: The incoming request.

    Returns:
        Parameters by name; JSON values keep their types, form values are strings.
    """
    params: dict[str, Any] = dict(request.query)
    if not request.body_exists:
        return params
    if request.content_type == "application/json":
        with suppress(ValueError):
            body = json.loads(await request.text() or "{}")
            if isinstance(body, dict):
                params.update(body)
    elif request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        params.update({key: value for key, value in form.items() if isinstance(value, str)})
    return params


async def _carry_out(
    request: web.Request, sandbox: Sandbox, reply: Reply, stopping: asyncio.Event
) -> web.StreamResponse:
    if reply.action is ReplyAction.HANG:
        await _hold(request, stopping, timeout_s=None)
        return _drop(request)
    if reply.action is ReplyAction.RESET:
        return _drop(request)
    if reply.delay_s > 0 and not await _hold(request, stopping, timeout_s=reply.delay_s):
        return _drop(request)
    if reply.text is not None:
        headers = {"Content-Type": reply.content_type}
        if reply.location is not None:
            headers["Location"] = reply.location
        return web.Response(status=reply.status, body=reply.text.encode(), headers=headers)
    text = json.dumps(sandbox.response_body(reply), ensure_ascii=False)
    return web.Response(status=reply.status, text=text, content_type="application/json", charset="utf-8")


async def _hold(request: web.Request, stopping: asyncio.Event, *, timeout_s: float | None) -> bool:
    """Wait `timeout_s` (forever if None); False if the server stops or the client leaves first."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout_s is None else loop.time() + timeout_s
    while not stopping.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            return False
        step = _DISCONNECT_POLL_S if deadline is None else min(_DISCONNECT_POLL_S, deadline - loop.time())
        if step <= 0:
            return True
        with suppress(TimeoutError):
            async with asyncio.timeout(step):
                await stopping.wait()
    return False


def _drop(request: web.Request) -> web.StreamResponse:
    """Abort the connection with a TCP reset, so the client gets no HTTP answer at all."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    # aiohttp fails to write this to the aborted transport and quietly drops it.
    return web.Response(status=500)
