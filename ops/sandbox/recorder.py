"""The record of every REST request the sandbox answered (logged as it is made), and waiting for new ones."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog

from ops.sandbox.faults import CALLBACK_START
from ops.sandbox.methods import php_string
from ops.sandbox.portal import RecordedCall, SandboxPortal
from ops.sandbox.redact import mask_phone
from ops.sandbox.reply import Reply, ReplyAction

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ReceivedRequest:
    """One REST request as the sandbox received it (`portal` None: its webhook is unknown)."""

    portal: SandboxPortal | None
    method: str
    params: dict[str, Any]
    user_id: str
    received_monotonic: float
    received_wall: float
    host: str = ""
    path: str = ""


class CallRecorder:
    """Recorded requests, oldest first, with a way to await new ones without sleeping."""

    def __init__(self) -> None:
        """Start with an empty record."""
        self._calls: list[RecordedCall] = []
        self._waiters: list[asyncio.Future[None]] = []

    def add(self, call: RecordedCall) -> None:
        """Append a record and wake every waiter."""
        self._calls.append(call)
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        """Forget every record."""
        self._calls.clear()

    def select(
        self, portal: str | None = None, executed_only: bool = False, *, method: str | None = CALLBACK_START
    ) -> list[RecordedCall]:
        """Return matching records, oldest first.

        Args:
            portal: Only this portal's requests; None for all.
            executed_only: Only requests that placed a call.
            method: Only this method (default `voximplant.callback.start`); None for all.

        Returns:
            The matching records.
        """
        return [
            call
            for call in self._calls
            if (portal is None or call.portal == portal)
            and (method is None or call.method == method)
            and (call.executed or not executed_only)
        ]

    async def wait_for(
        self,
        count: int,
        *,
        portal: str | None = None,
        executed_only: bool = False,
        method: str | None = CALLBACK_START,
        timeout_s: float = 5.0,
    ) -> list[RecordedCall]:
        """Wait until at least `count` records match (see `select`), and return them.

        Raises:
            TimeoutError: If they are not there within `timeout_s`.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while len(found := self.select(portal, executed_only, method=method)) < count:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError(f"expected {count} recorded calls, got {len(found)}")
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append(waiter)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                continue
            finally:
                self._waiters.remove(waiter)
        return found

    def record(
        self,
        request: ReceivedRequest,
        reply: Reply,
        *,
        executed: bool,
        call_id: str | None = None,
        fault: str | None = None,
    ) -> Reply:
        """Record how a request was answered, log it (the number masked) and return the reply.

        Args:
            request: The request.
            reply: The decision for it.
            executed: Whether it placed a call.
            call_id: The CALL_ID of a placed call.
            fault: The kind of fault it took, if any.

        Returns:
            `reply`, unchanged.
        """
        status = reply.status if reply.action is ReplyAction.ANSWER else None
        call = RecordedCall(
            portal=request.portal.name if request.portal else None,
            method=request.method,
            params=dict(request.params),
            received_monotonic=request.received_monotonic,
            received_wall=request.received_wall,
            status=status,
            executed=executed,
            call_id=call_id,
            fault=fault,
            host=request.host,
            path=request.path,
        )
        self.add(call)
        log.info(
            "sandbox.call",
            portal=call.portal,
            user_id=request.user_id,
            host=request.host,
            method=call.method,
            status=status,
            action=reply.action.value,
            executed=executed,
            fault=fault,
            call_id=call_id,
            from_line=php_string(request.params.get("FROM_LINE")) or None,
            to_number=mask_phone(number) if (number := php_string(request.params.get("TO_NUMBER"))) else None,
        )
        return reply
