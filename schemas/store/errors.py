"""Redis errors as one line a person can act on, without what was sent; and the one classification
of "Redis refuses writes". Pure.

redis-py writes the command and its arguments into a pipeline's error ("Command # 1 (EVALSHA … a
job's JSON, a phone number …) of pipeline caused error: …"): that part never reaches a terminal or
a log.

**Redis refusing writes.** Redis answers a command that may write with an error, and keeps serving
reads, when it is

==================  ===========================================  =============================
reason              Redis's error (prefix)                       redis-py's exception
==================  ===========================================  =============================
``full``            ``OOM`` (``maxmemory`` under ``noeviction``)  ``OutOfMemoryError``
``misconf``         ``MISCONF`` (an RDB save failed and            ``ResponseError``
                    ``stop-writes-on-bgsave-error`` is on)
``readonly``        ``READONLY`` (a replica: after a failover,    ``ReadOnlyError``
                    or a misdirected URL)
``noreplicas``      ``NOREPLICAS`` (fewer good replicas than      ``ResponseError``
                    ``min-replicas-to-write``)
==================  ===========================================  =============================

In each case the refused command did nothing (a Lua script is refused at its first write, before it
changed anything; a MULTI is refused whole), so it can be sent again once Redis takes writes, and
nothing needs undoing. :func:`write_refusal` is the one place that tells them; everything that rides
out a refusing Redis (the worker's :class:`~schemas.store.writegate.WriteGate`, the job's
bookkeeping, the intake, ``callq serve``, the CLI) asks it. Unlike ``full``, the other three refuse
deletes and acknowledgements too. A blocked command cut off because the instance turned into a
replica (``UNBLOCKED … instance state changed``) counts as ``readonly``.
"""

from __future__ import annotations

from enum import StrEnum

from redis.exceptions import OutOfMemoryError, ReadOnlyError, ResponseError


class Refusal(StrEnum):
    """Why Redis refuses writes (the ``reason`` label of ``callq_redis_writes_refused``)."""

    FULL = "full"
    MISCONF = "misconf"
    READONLY = "readonly"
    NOREPLICAS = "noreplicas"


REDIS_FULL = (
    "Redis is full (maxmemory reached, noeviction) and refuses writes: nothing was stored; "
    "free memory in Redis or raise its maxmemory, then try again"
)

REFUSALS: dict[Refusal, str] = {
    Refusal.FULL: REDIS_FULL,
    Refusal.MISCONF: (
        "Redis refuses writes because it cannot save its RDB snapshot (MISCONF, "
        "stop-writes-on-bgsave-error): nothing was stored; fix its disk (space, permissions), then try again"
    ),
    Refusal.READONLY: (
        "Redis refuses writes because it is a read-only replica (READONLY: a failover, or a URL that "
        "names a replica): nothing was stored; point callq at the primary, then try again"
    ),
    Refusal.NOREPLICAS: (
        "Redis refuses writes because too few replicas are connected (NOREPLICAS, "
        "min-replicas-to-write): nothing was stored; bring the replicas back, then try again"
    ),
}
"""What to tell a person, by reason: one line, what happened and what to do."""

_PREFIXES = {
    "OOM ": Refusal.FULL,
    "MISCONF ": Refusal.MISCONF,
    "READONLY ": Refusal.READONLY,
    "NOREPLICAS ": Refusal.NOREPLICAS,
    # a blocked read (the intake's XREADGROUP) is cut off so when the instance turns into a replica
    "UNBLOCKED force unblock from blocking operation, instance state changed": Refusal.READONLY,
}
"""Redis's error prefixes, for the refusals redis-py has no class of its own for."""

_PIPELINE = " of pipeline caused error: "


def write_refusal(exc: BaseException) -> Refusal | None:
    """Why ``exc`` says Redis refuses writes, or None when it says something else.

    Args:
        exc: anything raised while talking to Redis (a command, a Lua script, a MULTI/EXEC).

    Returns:
        The reason, or None.
    """
    if isinstance(exc, OutOfMemoryError):
        return Refusal.FULL
    if isinstance(exc, ReadOnlyError):
        return Refusal.READONLY
    if not isinstance(exc, ResponseError):
        return None
    text = _message(exc)
    for prefix, refusal in _PREFIXES.items():
        if text.startswith(prefix):
            return refusal
    return None


def _message(exc: BaseException) -> str:
    """The error Redis sent, without redis-py's pipeline preamble (which holds the command)."""
    text = str(exc)
    if _PIPELINE in text:
        text = text.split(_PIPELINE, 1)[1].strip().removeprefix("(").removesuffix(",)").strip("'\"")
    return " ".join(text.split())


def describe_redis_error(exc: BaseException) -> str:
    """``exc`` in one line: what went wrong, never the command that was sent.

    Args:
        exc: a redis-py error (or an OS error on the way to Redis).

    Returns:
        What to do for a refusal of writes (:data:`REFUSALS`), else the error's class and message.
    """
    refusal = write_refusal(exc)
    if refusal is not None:
        return REFUSALS[refusal]
    text = _message(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
