"""The store's script replies, parsed into typed values (a reply the code does not expect raises).

Redis answers a Lua table as a list of bytes (or str, with ``decode_responses``) and numbers; each
script's reply has one shape, read here once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from schemas.store.records import decode_text


class ScriptReplyError(Exception):
    """A script answered something its caller does not know: a bug, or a script of another version."""


def _text(reply: Any, index: int) -> str:
    try:
        item = reply[index]
    except (IndexError, TypeError):
        raise ScriptReplyError(f"reply {reply!r} has no item {index}") from None
    return str(item) if isinstance(item, int) else decode_text(item)


def _int(reply: Any, index: int) -> int:
    try:
        return int(_text(reply, index))
    except ValueError:
        raise ScriptReplyError(f"item {index} of {reply!r} is not a number") from None


class AdmitVerdict(StrEnum):
    """What ``admit.lua`` did."""

    NEW = "new"
    """Stored and scheduled: this job."""
    IDEMPOTENT = "idempotent"
    """The idempotency key (or this job id: a redelivered entry) names a job already."""
    DUPLICATE = "duplicate"
    """Another job holds the line + number."""
    REFUSED = "refused"
    """A replay of a job that cannot be replayed (not dead, or replayed already)."""


@dataclass(frozen=True)
class Admission:
    """What :meth:`schemas.store.ledger.Ledger.admit` did.

    Attributes:
        verdict: see :class:`AdmitVerdict`.
        job_id: the new job, or the holder of the key or of the line + number; for ``refused``, why.
    """

    verdict: AdmitVerdict
    job_id: str

    @classmethod
    def parse(cls, reply: Any) -> Admission:
        """From ``{verdict, job id}``."""
        return cls(verdict=AdmitVerdict(_text(reply, 0)), job_id=_text(reply, 1))


class StartVerdict(StrEnum):
    """What ``start.lua`` found."""

    STARTED = "started"
    """This worker owns the attempt (its lease is taken); the request may be sent."""
    BUSY = "busy"
    """An attempt is in flight and its worker keeps its lease alive."""
    INTERRUPTED = "interrupted"
    """An attempt is in flight but its lease lapsed: nobody may be working on it any more."""
    HALTED = "halted"
    """The portal is halted or paused: nothing is sent."""
    HELD = "held"
    """A rate-limit slot is too far ahead (or past the deadline): the job was put back to wake
    just before it, holding its slots."""
    FINAL = "final"
    MISSING = "missing"
    REFUSED = "refused"


@dataclass(frozen=True)
class Start:
    """What :meth:`schemas.store.ledger.Ledger.start_attempt` found.

    Attributes:
        verdict: see :class:`StartVerdict`.
        attempt: the attempt's number (``started``, ``busy``, ``interrupted``).
        state: the final state (``final``).
        halted_ms: how long the portal stays halted or paused (``halted``).
        seen_ms: Redis's time when the lease was looked at (``busy``, ``interrupted``).
        token: the attempt's lease token (``started``): the worker's end of the attempt is
            written only while the record still holds it.
        replicated: the START reached the replicas asked for (always, when none were).
        wait_ms: how long to wait for the slots START took before sending (``started``).
        wake_ms: when the job wakes again, holding its slots (``held``; unix ms).
    """

    verdict: StartVerdict
    attempt: int = 0
    state: str | None = None
    halted_ms: int = 0
    seen_ms: int = 0
    token: str = ""
    replicated: bool = True
    wait_ms: int = 0
    wake_ms: int = 0

    @classmethod
    def parse(cls, reply: Any, *, token: str = "") -> Start:
        """From ``{verdict, value[, redis ms or wait ms]}``; ``token`` is the one the START call sent."""
        verdict = StartVerdict(_text(reply, 0))
        if verdict is StartVerdict.HALTED:
            return cls(verdict, halted_ms=_int(reply, 1))
        if verdict is StartVerdict.HELD:
            return cls(verdict, wake_ms=_int(reply, 1))
        if verdict is StartVerdict.STARTED:
            wait_ms = max(_int(reply, 2), 0) if len(reply) > 2 else 0
            return cls(verdict, attempt=_int(reply, 1), token=token, wait_ms=wait_ms)
        if verdict in (StartVerdict.BUSY, StartVerdict.INTERRUPTED):
            return cls(verdict, attempt=_int(reply, 1), seen_ms=_int(reply, 2))
        return cls(verdict, state=_text(reply, 1) or None)


class FinalizeVerdict(StrEnum):
    """What ``finalize.lua`` did."""

    WRITTEN = "written"
    EXISTS = "exists"
    """``record``: a record exists already (a redelivered submission)."""
    MISSING = "missing"
    FINAL = "final"
    BUSY = "busy"
    """Not in an expected state, or the orphan's lease came alive again."""
    SUPERSEDED = "superseded"
    """The writer's attempt was judged orphaned and another attempt started since."""
    REFUSED = "refused"
    """The state machine does not allow it (cancelling a running job, say), or the replayed job
    cannot be replayed."""


@dataclass(frozen=True)
class FinalizeResult:
    """What a final outcome's write did.

    Attributes:
        verdict: see :class:`FinalizeVerdict`.
        state: the job's state that prevented it (or the status written); for a refused replay, why.
    """

    verdict: FinalizeVerdict
    state: str

    @property
    def written(self) -> bool:
        """This call wrote the outcome."""
        return self.verdict is FinalizeVerdict.WRITTEN

    @property
    def busy(self) -> bool:
        """The job was pending but not in an expected state, or its orphan's lease came alive."""
        return self.verdict is FinalizeVerdict.BUSY

    @classmethod
    def parse(cls, reply: Any) -> FinalizeResult:
        """From ``{verdict, state}``."""
        return cls(verdict=FinalizeVerdict(_text(reply, 0)), state=_text(reply, 1))


class RescheduleVerdict(StrEnum):
    """What ``reschedule.lua`` did."""

    OK = "ok"
    BUSY = "busy"
    """The orphan's lease came alive again."""
    SUPERSEDED = "superseded"
    """The writer's attempt was judged orphaned and another attempt started since."""
    REFUSED = "refused"
    MISSING = "missing"
    ELSEWHERE = "elsewhere"
    """The job is not in an expected state (cancelled, finished, or put back by someone else)."""


@dataclass(frozen=True)
class Rescheduled:
    """What :meth:`schemas.store.ledger.Ledger.reschedule` did.

    Attributes:
        verdict: see :class:`RescheduleVerdict`.
        state: the job's state when not ``ok``.
        run_at_ms: when it runs again (``ok``: now, if the halt it was to wait for is lifted).
    """

    verdict: RescheduleVerdict
    state: str = ""
    run_at_ms: int = 0

    @classmethod
    def parse(cls, reply: Any) -> Rescheduled:
        """From ``{'ok', run_at}`` or ``{verdict-or-state, ...}``."""
        head = _text(reply, 0)
        if head == "ok":
            return cls(RescheduleVerdict.OK, run_at_ms=_int(reply, 1))
        if head in ("busy", "superseded", "refused"):
            return cls(RescheduleVerdict(head), state=_text(reply, 1))
        if head == "missing":
            return cls(RescheduleVerdict.MISSING)
        return cls(RescheduleVerdict.ELSEWHERE, state=head)


class CallVerdict(StrEnum):
    """What a script of a call's follow-up (``follow.lua``, ``call_end.lua``) did."""

    OK = "ok"
    WRITTEN = "written"
    REFUSED = "refused"
    """The job is not ``succeeded``, or the state machine does not allow the change."""
    BUSY = "busy"
    """The call is not in an expected state."""
    STALE = "stale"
    """Another call of the job (a redial) is followed now."""
    SUPERSEDED = "superseded"
    """The redial's lease was judged lapsed meanwhile."""
    CLAIMED = "claimed"
    """A redial: another job holds the line + number."""


@dataclass(frozen=True)
class CallWrite:
    """What a call step did: its verdict, and the call state (or the claim's holder)."""

    verdict: CallVerdict
    state: str

    @property
    def done(self) -> bool:
        """The step was made (or had been, by this same call)."""
        return self.verdict in (CallVerdict.OK, CallVerdict.WRITTEN)

    @classmethod
    def parse(cls, reply: Any) -> CallWrite:
        """From ``{verdict, state}``."""
        return cls(CallVerdict(_text(reply, 0)), _text(reply, 1))


@dataclass(frozen=True)
class RedialStart:
    """What ``redial_start.lua`` found (the verdicts of :class:`StartVerdict`, for a redial)."""

    verdict: StartVerdict
    attempt: int = 0
    halted_ms: int = 0
    state: str = ""

    @classmethod
    def parse(cls, reply: Any) -> RedialStart:
        """From ``{verdict, value}``."""
        verdict = StartVerdict(_text(reply, 0))
        if verdict is StartVerdict.HALTED:
            return cls(verdict, halted_ms=_int(reply, 1))
        if verdict is StartVerdict.FINAL:
            return cls(verdict, state=_text(reply, 1))
        return cls(verdict, attempt=_int(reply, 1))
