"""What the Python API answers, and the errors it raises: shared by every way in built on it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from schemas.states import Status
from schemas.wire.outcome import OutcomeError


class PortalNotAllowed(PermissionError):
    """A scoped submission named a portal outside its scope (HTTP ``403``); nothing was recorded.

    Attributes:
        portal: the portal named.
    """

    def __init__(self, portal: str) -> None:
        self.portal = portal
        super().__init__(f"this token may not submit jobs to portal {portal!r}")


class AmbiguousKeyError(LookupError):
    """An idempotency key names jobs on several portals and no portal was given: name one.

    Job ids are global, but the same key on two portals is two jobs, so a lookup by key never picks
    one of them for the caller.

    Attributes:
        portals: the portals (among those looked at) that have a job under the key, sorted.
    """

    def __init__(self, portals: Sequence[str]) -> None:
        self.portals = tuple(portals)
        super().__init__(
            f"this idempotency key names jobs on several portals ({', '.join(self.portals)}); name one"
        )


class ReplayRefused(Exception):
    """A dead job could not be replayed: someone replayed (or purged) it meanwhile.

    Attributes:
        reason: why, as the store said.
    """

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"cannot replay: {reason}")


@dataclass(frozen=True)
class Submitted:
    """What happened to a submission.

    Attributes:
        job_id: the job's id (for an idempotent repeat, the first job's id).
        status: its state now: ``scheduled``, or a final status such as ``duplicate``,
            ``rejected`` or ``expired``; for an idempotent repeat, the first job's state.
        new: True if this call created a job that will be called.
        run_at: when it is due, if scheduled.
        duplicate_of: the job that holds the same line + number, for ``duplicate``.
        error: why, for ``rejected`` and ``expired``. A known idempotency key sent with a
            different request is ``rejected`` with code ``IDEMPOTENCY_KEY_REUSED`` and
            ``error.fields`` naming what differs (never silently the first job).
        existing_job_id: for ``IDEMPOTENCY_KEY_REUSED``, the job that holds the key.
    """

    job_id: str
    status: Status
    new: bool
    run_at: datetime | None = None
    duplicate_of: str | None = None
    error: OutcomeError | None = None
    existing_job_id: str | None = None
