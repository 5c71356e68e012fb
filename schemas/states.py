"""The job's state machine: every state a job can be in, and every transition between them.

A job lives in one Redis hash (:mod:`schemas.store`) and changes state only through the store's Lua
scripts, one atomic step each. Each script takes the table below as its rules (rendered into Lua by
:func:`lua_rules` and prepended to every script), and checks a change against it before it writes:
a transition not in the table is refused, whoever asks. ``tests/schemas/test_states.py`` walks the
table: each transition it allows is made by its script, each one it forbids is refused.

::

    step       from                          to                               script
    ---------  ----------------------------  -------------------------------  ----------------
    admit      (new)                         scheduled                        admit.lua
    record     (new)                         rejected, duplicate, expired     finalize.lua
    start      scheduled, retrying           running                          start.lua
    put_back   scheduled                     scheduled                        reschedule.lua, start.lua
    put_back   retrying                      retrying                         reschedule.lua, start.lua
    put_back   running                       retrying                         reschedule.lua
    finish     running                       succeeded, expired, dead         finalize.lua
    finish     scheduled, retrying           expired, dead                    finalize.lua
    cancel     scheduled, retrying           cancelled                        finalize.lua
    replay     dead                          dead (replayed; a new job)       admit.lua / finalize.lua
    purge      dead                          (gone)                           purge.lua

- ``put_back``: wait for a later time: business hours, a rate-limit slot (START takes the slots
  and, for one too far ahead, puts the job back in the same step), a halted portal
  (``scheduled``/``retrying`` stay as they are), or the next try after a failed attempt, or after an
  orphaned one on a portal with ``retry_unknown`` (``running`` → ``retrying``).
- ``finish`` from ``scheduled``/``retrying``: the deadline passed before the job could run
  (``expired``), or its portal is no longer configured (``dead``).
- ``replay`` keeps the dead job ``dead`` (with ``replayed_by``; it leaves the dead-letter index) and
  admits a new job, in the same script.

**The call's follow-up** (an extension, issue 14). ``succeeded`` stays final: Bitrix24 accepted the
callback, and the outcome stream says so once. The call that callback placed is followed in a
second, smaller machine on the same record, its field ``call``, only while the job is ``succeeded``:

::

    step          from                          to          script
    ------------  ----------------------------  ----------  ---------------------------------------
    follow        (none), dialling              awaiting    follow.lua (with finalize.lua, one MULTI)
    redial        awaiting, dialling, redial    redial      call_end.lua
    call_end      awaiting, dialling, redial    ended       call_end.lua
    redial_start  redial                        dialling    redial_start.lua
    cancel        redial                        ended       call_end.lua (the final result: cancelled)

- ``awaiting``: a CALL_ID is out and its end not known yet (pull asks ``voximplant.statistic.get``,
  push takes ``OnVoximplantCallEnd``).
- ``redial``: the call ended in a known failure the line's policy redials; the job waits in arq's
  queue for ``run_at`` (business hours, before its deadline), holding its line + number claim.
  ``redial`` → ``redial`` puts it back (a closed line, a rate slot, a refusal before running).
- ``dialling``: a redial's request is in flight: marked (a lease in ``{p}:dialling``) before it is
  sent, like ``running``; accepted → ``awaiting`` with the new CALL_ID; lost → ``ended`` unknown.
- ``ended``: the final call result, written once, with its entry on ``{p}:outcomes``.
- ``cancel``: a person cancels a waiting redial (``DELETE /v1/callbacks/{id}``, ``callq cancel``, the
  dashboard): the final call result is the last call's, ``ended_by: cancelled``; its queue entry is
  removed. A redial already ``dialling`` cannot be cancelled (its request may be out).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    """Every state a job can be in. The first three are pending, the rest final."""

    SCHEDULED = "scheduled"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    EXPIRED = "expired"
    DEAD = "dead"
    CANCELLED = "cancelled"


PENDING_STATUSES = frozenset({Status.SCHEDULED, Status.RUNNING, Status.RETRYING})
"""A job in one of these holds its line + number claim."""

STARTABLE_STATUSES = frozenset({Status.SCHEDULED, Status.RETRYING})
"""A job in one of these can still be cancelled: no request for it is in flight."""

FINAL_STATUSES = frozenset(Status) - PENDING_STATUSES
"""Exactly one of these is written per job, once, to ``{p}:outcomes``."""

RELEASING_STATUSES = frozenset({Status.CANCELLED, Status.EXPIRED, Status.DEAD})
"""Final states that give the line + number back, so a new request for it goes through."""

NEW = "new"
"""Not a state: no record exists yet."""

GONE = "gone"
"""Not a state: the record was deleted (a purged dead letter)."""


class Step(StrEnum):
    """What changes a job's state; each is made by one script of the store."""

    ADMIT = "admit"
    RECORD = "record"
    START = "start"
    PUT_BACK = "put_back"
    FINISH = "finish"
    CANCEL = "cancel"
    REPLAY = "replay"
    PURGE = "purge"


@dataclass(frozen=True)
class Transition:
    """One allowed change: ``step`` takes a job from ``source`` to ``target``."""

    step: Step | CallStep
    source: str
    target: str


def _each(step: Step | CallStep, sources: Iterable[str], targets: Iterable[str]) -> list[Transition]:
    return [Transition(step, source, target) for source in sources for target in targets]


S = Status
TRANSITIONS: tuple[Transition, ...] = tuple(
    _each(Step.ADMIT, [NEW], [S.SCHEDULED])
    + _each(Step.RECORD, [NEW], [S.REJECTED, S.DUPLICATE, S.EXPIRED])
    + _each(Step.START, [S.SCHEDULED, S.RETRYING], [S.RUNNING])
    + _each(Step.PUT_BACK, [S.SCHEDULED], [S.SCHEDULED])
    + _each(Step.PUT_BACK, [S.RETRYING], [S.RETRYING])
    + _each(Step.PUT_BACK, [S.RUNNING], [S.RETRYING])
    + _each(Step.FINISH, [S.RUNNING], [S.SUCCEEDED, S.EXPIRED, S.DEAD])
    + _each(Step.FINISH, [S.SCHEDULED, S.RETRYING], [S.EXPIRED, S.DEAD])
    + _each(Step.CANCEL, [S.SCHEDULED, S.RETRYING], [S.CANCELLED])
    + _each(Step.REPLAY, [S.DEAD], [S.DEAD])
    + _each(Step.PURGE, [S.DEAD], [GONE])
)
"""Every allowed transition: the whole state machine."""


class CallState(StrEnum):
    """The follow-up of a ``succeeded`` job's call (the record's ``call`` field)."""

    AWAITING = "awaiting"
    REDIAL = "redial"
    DIALLING = "dialling"
    ENDED = "ended"


NO_CALL = "none"
"""Not a call state: the job has no call followed (not succeeded, no CALL_ID, or following is off)."""

PENDING_CALL_STATES = frozenset({CallState.AWAITING, CallState.REDIAL, CallState.DIALLING})
"""A job in one of these has no final call result yet (a redial holds the line + number claim)."""


class CallStep(StrEnum):
    """What changes a call's follow-up state; each is made by one script of the store."""

    FOLLOW = "follow"
    REDIAL = "redial"
    CALL_END = "call_end"
    REDIAL_START = "redial_start"
    CANCEL = "cancel"


C = CallState
CALL_TRANSITIONS: tuple[Transition, ...] = tuple(
    _each(CallStep.FOLLOW, [NO_CALL, C.DIALLING], [C.AWAITING])
    + _each(CallStep.REDIAL, [C.AWAITING, C.DIALLING, C.REDIAL], [C.REDIAL])
    + _each(CallStep.CALL_END, [C.AWAITING, C.DIALLING, C.REDIAL], [C.ENDED])
    + _each(CallStep.REDIAL_START, [C.REDIAL], [C.DIALLING])
    + _each(CallStep.CANCEL, [C.REDIAL], [C.ENDED])
)
"""Every allowed change of a call's follow-up: the second machine."""


def call_allowed(step: CallStep, source: str, target: str) -> bool:
    """Whether ``step`` may take a call's follow-up from ``source`` to ``target``."""
    return Transition(step, source, target) in CALL_TRANSITIONS


def allowed(step: Step, source: str, target: str) -> bool:
    """Whether ``step`` may take a job from ``source`` to ``target``."""
    return Transition(step, source, target) in TRANSITIONS


def sources(step: Step) -> frozenset[str]:
    """The states ``step`` may start from."""
    return frozenset(t.source for t in TRANSITIONS if t.step == step)


def _lua_str(name: str) -> str:
    return f"'{name}'"  # state and step names are [a-z_]+


def _lua_set(names: Iterable[str]) -> str:
    return "{" + ", ".join(f"[{_lua_str(name)}]=true" for name in sorted(map(str, names))) + "}"


def lua_rules() -> str:
    """The table as Lua, prepended to every script of the store.

    ``CAN[step][from][to]`` is true for an allowed transition; ``PENDING`` and ``FINAL`` are the
    sets of states; ``S.<NAME>`` each state's name; ``CALL_CAN``, ``call_can`` and ``C.<NAME>`` the
    same for a call's follow-up.
    """
    steps: dict[str, dict[str, set[str]]] = {}
    for t in TRANSITIONS:
        steps.setdefault(str(t.step), {}).setdefault(str(t.source), set()).add(str(t.target))
    can = ", ".join(
        f"{step}={{"
        + ", ".join(f"[{source!r}]={_lua_set(targets)}" for source, targets in sorted(table.items()))
        + "}"
        for step, table in sorted(steps.items())
    )
    names = ", ".join(f"{status.name}={status.value!r}" for status in Status)
    call_steps: dict[str, dict[str, set[str]]] = {}
    for t in CALL_TRANSITIONS:
        call_steps.setdefault(str(t.step), {}).setdefault(str(t.source), set()).add(str(t.target))
    call_can = ", ".join(
        f"{step}={{"
        + ", ".join(f"[{source!r}]={_lua_set(targets)}" for source, targets in sorted(table.items()))
        + "}"
        for step, table in sorted(call_steps.items())
    )
    call_names = ", ".join(f"{state.name}={state.value!r}" for state in CallState)
    return (
        "-- the state machine (schemas/states.py), rendered for this script\n"
        f"local S = {{{names}, NEW={_lua_str(NEW)}}}\n"
        f"local PENDING = {_lua_set(PENDING_STATUSES)}\n"
        f"local FINAL = {_lua_set(FINAL_STATUSES)}\n"
        f"local CAN = {{{can}}}\n"
        "local function can(step, from, to)\n"
        "  local table_ = CAN[step][from]\n"
        "  return table_ ~= nil and table_[to] == true\n"
        "end\n"
        f"local C = {{{call_names}, NONE={_lua_str(NO_CALL)}}}\n"
        f"local CALL_CAN = {{{call_can}}}\n"
        "local function call_can(step, from, to)\n"
        "  local table_ = CALL_CAN[step][from]\n"
        "  return table_ ~= nil and table_[to] == true\n"
        "end\n"
    )
