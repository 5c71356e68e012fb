"""Waiting for a job's outcome: poll its record with a deadline (used by the demo and tests)."""

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
