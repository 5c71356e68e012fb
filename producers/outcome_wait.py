"""Waiting for a job's outcome, and for its call's result: poll its record with a deadline (used by the
demo and tests)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from schemas.store.ledger import Ledger


async def wait_for_outcome(
    ledger: Ledger, job_id: str, *, timeout_s: float, poll_s: float = 0.05
) -> dict[str, Any] | None:
    """The job's outcome once it is final, or None if ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        record = await ledger.read(job_id)
        if record is not None and record.outcome is not None:
            return record.outcome
        if time.monotonic() >= deadline:
            return None
        await asyncio.sleep(poll_s)


async def wait_for_call_result(
    ledger: Ledger, job_id: str, *, timeout_s: float, poll_s: float = 0.2
) -> dict[str, Any] | None:
    """The job's final call result once its call has ended (issue 14), or None if ``timeout_s``
    passes first (or the job has no call followed)."""
    deadline = time.monotonic() + timeout_s
    while True:
        record = await ledger.read(job_id)
        if record is not None and record.call is not None and record.call.final is not None:
            return record.call.final
        if time.monotonic() >= deadline or (record is not None and record.outcome and record.call is None):
            return None
        await asyncio.sleep(poll_s)
