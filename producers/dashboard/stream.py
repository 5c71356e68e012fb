"""Recent outcomes, live: ``GET /dashboard/outcomes/stream`` as server-sent events.

The handler reads the last outcomes (``XREVRANGE``), then waits on the outcome stream with ``XREAD
BLOCK`` and sends each new outcome of a portal the session may see, masked, as one ``outcome`` event.
A comment every 15 s keeps proxies from closing an idle stream; the browser's
``EventSource`` reconnects by itself (with ``Last-Event-ID``, so nothing is missed or sent twice).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web
from redis.asyncio import Redis

from producers.dashboard.app import DASHBOARD, SESSION, require_session
from schemas.policy.redact import Redactor
from schemas.store.records import decode_text

BLOCK_MS = 1_000
"""Each wait on the stream: short, so a stream notices the server shutting down within a second (an
idle stream costs one XREAD a second)."""
KEEPALIVE_EVERY = 15
BACKLOG = 50


_U64 = 2**64


def stream_id(text: str) -> str | None:
    """``text`` as a Redis stream id (``<ms>`` or ``<ms>-<seq>``, each below 2**64), or None."""
    ms, dash, seq = text.strip().partition("-")
    parts = [ms, seq] if dash else [ms]
    if not all(part.isascii() and part.isdigit() and len(part) <= 20 and int(part) < _U64 for part in parts):
        return None
    return f"{int(ms)}-{int(seq) if dash else 0}"


async def _newest(redis: Redis, stream: str) -> str:
    """The id of the stream's newest entry ("0-0" for none): following from it gives what comes next."""
    newest = await redis.xrevrange(stream, count=1)
    return decode_text(newest[0][0]) if newest else "0-0"


def _event(entry_id: str, fields: dict[Any, Any], may_see: Any, redactor: Redactor) -> bytes | None:
    raw = fields.get(b"outcome") or fields.get("outcome")
    if raw is None:
        return None
    outcome = json.loads(raw)
    if not may_see(outcome.get("portal") or ""):
        return None
    data = json.dumps(redactor.value(outcome), separators=(",", ":"))
    # a call result updates its job's row (its outcome came before): no second outcome
    kind = fields.get(b"kind") or fields.get("kind")
    name = "call_result" if kind in (b"call_result", "call_result") else "outcome"
    return f"id: {entry_id}\nevent: {name}\ndata: {data}\n\n".encode()


@require_session
async def outcomes_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: the last outcomes, then each new one."""
    dash, session = request.app[DASHBOARD], request[SESSION]
    stream = dash.keys.outcomes
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )
    await response.prepare(request)
    last = request.headers.get("Last-Event-ID", "")
    if last:  # a reconnect: what came after the last event it saw (from now, if that is no stream id)
        backlog: list[Any] = []
        last = stream_id(last) or await _newest(dash.redis, stream)
    else:
        backlog = list(reversed(await dash.redis.xrevrange(stream, count=BACKLOG)))
        last = decode_text(backlog[-1][0]) if backlog else "0-0"  # empty: everything from now on
    for entry_id, fields in backlog:
        event = _event(decode_text(entry_id), fields, session.caller.may_see, dash.redactor)
        if event:
            await response.write(event)
    await response.write(b": ready\n\n")
    try:
        await _follow(
            response, dash.redis, stream, last, session.caller.may_see, dash.redactor, closing=dash.closing
        )
    except (ConnectionResetError, ConnectionError):
        pass  # the browser went away (it reconnects with Last-Event-ID)
    return response


async def _follow(
    response: web.StreamResponse,
    redis: Redis,
    stream: str,
    last: str,
    may_see: Any,
    redactor: Redactor,
    *,
    closing: asyncio.Event,
) -> None:
    idle = 0
    while not closing.is_set():
        replies = await redis.xread({stream: last}, block=BLOCK_MS, count=100)
        if not replies:
            idle += 1
            if idle % KEEPALIVE_EVERY == 0:
                await response.write(b": keep-alive\n\n")
            continue
        for _name, entries in replies:
            for entry_id, fields in entries:
                last = decode_text(entry_id)
                event = _event(last, fields, may_see, redactor)
                if event:
                    await response.write(event)
