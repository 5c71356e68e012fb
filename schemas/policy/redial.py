"""Whether a callback whose call did not reach the client is dialled again, and when. Pure.

Per portal (``[portals.NAME.calls]``) and per line (``[portals.NAME.lines.LINE]``): which call
results redial (default busy, no answer, temporarily unavailable), after which delays, how many
times. Never after a connected call, a declined one, an invalid number or an unknown result (the
client may have been reached); never outside business hours (the calendar) nor at or after the
job's deadline. :func:`decide_redial` returns a :class:`Redial` at an instant, or an :class:`EndCall`
naming why the call result is final.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from schemas.policy.calendar import Calendar, Expired, earliest_run
from schemas.policy.call_result import KNOWN_FAILURES, CallKind

NEVER_REDIALLED = frozenset(
    {CallKind.CONNECTED, CallKind.DECLINED, CallKind.INVALID_NUMBER, CallKind.UNKNOWN}
)
"""Kinds no configuration can make redial."""

DEFAULT_REDIAL_ON = frozenset({CallKind.BUSY, CallKind.NO_ANSWER, CallKind.UNAVAILABLE})
DEFAULT_REDIAL_DELAYS_S = (300.0, 900.0)
DEFAULT_MAX_REDIALS = 2


@dataclass(frozen=True)
class RedialPolicy:
    """Which call results redial, after which delays, how many times.

    Attributes:
        redial_on: the kinds that redial (a subset of the known failures; see ``NEVER_REDIALLED``).
        delays_s: the wait before redial 1, 2, ...; the last one repeats.
        max_redials: redials per job at most (0: never).
    """

    redial_on: frozenset[CallKind] = field(default=DEFAULT_REDIAL_ON)
    delays_s: tuple[float, ...] = DEFAULT_REDIAL_DELAYS_S
    max_redials: int = DEFAULT_MAX_REDIALS

    def __post_init__(self) -> None:
        refused = self.redial_on - (KNOWN_FAILURES - NEVER_REDIALLED)
        if refused:
            raise ValueError(f"never redialled: {', '.join(sorted(refused))}")
        if not self.delays_s or any(delay < 0 for delay in self.delays_s) or self.max_redials < 0:
            raise ValueError("delays must be >= 0 (at least one) and max_redials >= 0")

    def delay_s(self, redial: int) -> float:
        """The wait before redial number ``redial`` (1-based)."""
        return self.delays_s[min(redial, len(self.delays_s)) - 1]


class EndReason(StrEnum):
    """Why a call result is the job's final one."""

    CONNECTED = "connected"
    NOT_REDIALLED = "not_redialled"
    """The kind does not redial (declined, invalid number, failed, or not configured to)."""
    REDIALS_EXHAUSTED = "redials_exhausted"
    DEADLINE = "deadline"
    """The next redial would be at or after the deadline (or the line never opens again)."""
    UNKNOWN = "unknown"
    """No end arrived within the follow-up horizon, or a redial's result is unknown."""
    REDIAL_REFUSED = "redial_refused"
    """Bitrix24 refused the redial's ``callback.start`` for good."""
    CANCELLED = "cancelled"
    """A person cancelled the waiting redial (``detail`` says who)."""


@dataclass(frozen=True)
class Redial:
    """Dial again at ``at`` (inside business hours, before the deadline)."""

    at: datetime
    redial: int


@dataclass(frozen=True)
class EndCall:
    """The call result is final."""

    reason: EndReason
    detail: str = ""


def decide_redial(
    policy: RedialPolicy,
    kind: CallKind,
    *,
    redials_done: int,
    now: datetime,
    calendar: Calendar,
    not_before: datetime | None,
    deadline: datetime | None,
) -> Redial | EndCall:
    """Decide what a call's end leads to.

    Args:
        policy: the line's redial policy.
        kind: what the call came to.
        redials_done: redials already made for this job.
        now: the current instant.
        calendar: the line's business hours.
        not_before: the job's earliest moment, if any.
        deadline: the job's deadline, if any.

    Returns:
        :class:`Redial` at the first open instant after the policy's delay, or :class:`EndCall`.
    """
    if kind is CallKind.CONNECTED:
        return EndCall(EndReason.CONNECTED)
    if kind is CallKind.UNKNOWN:
        return EndCall(EndReason.UNKNOWN)
    if kind not in policy.redial_on:
        return EndCall(EndReason.NOT_REDIALLED)
    if redials_done >= policy.max_redials:
        return EndCall(EndReason.REDIALS_EXHAUSTED)
    redial = redials_done + 1
    wanted = now + timedelta(seconds=policy.delay_s(redial))
    decision = earliest_run(calendar, now=wanted, not_before=not_before, deadline=deadline)
    if isinstance(decision, Expired):
        return EndCall(EndReason.DEADLINE, decision.reason)
    return Redial(at=decision.at, redial=redial)
