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

    step: Step
    source: str
    target: str


def _each(step: Step, sources: Iterable[str], targets: Iterable[str]) -> list[Transition]:
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
    sets of states; ``S.<NAME>`` each state's name.
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
    )
