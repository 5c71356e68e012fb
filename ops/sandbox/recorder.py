"""The record of every REST request the sandbox answered, and waiting for new records."""

from __future__ import annotations

import asyncio

from ops.sandbox.faults import CALLBACK_START
from ops.sandbox.portal import RecordedCall


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
