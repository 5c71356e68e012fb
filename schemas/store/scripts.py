"""The store's Lua scripts, registered in one place.

Each state change of a job is one atomic script (``lua/<name>.lua``), so that no interleaving of
producers, workers and ops commands can give a job two outcomes, ring a number twice or lose a
claim. Every script is sent with the state machine's rules first (:func:`schemas.states.lua_rules`:
it checks each change against the table of :mod:`schemas.states`), then the fragments it names on its
first line (``-- uses: _now, _gcra``; files starting with ``_``), then its own text. Keys passed as
the empty string are absent (Redis Cluster is not supported: a job's keys span hash slots).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

from schemas.states import lua_rules

USES = "-- uses:"


@functools.cache
def _text(name: str) -> str:
    return resources.files("schemas.store").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def _uses(name: str) -> list[str]:
    """The fragments ``name`` needs, each after the ones it needs itself, each once."""
    first = _text(name).splitlines()[0]
    named = [part.strip() for part in first.removeprefix(USES).split(",")] if first.startswith(USES) else []
    ordered: list[str] = []
    for fragment in named:
        for needed in [*_uses(fragment), fragment]:
            if needed not in ordered:
                ordered.append(needed)
    return ordered


@functools.cache
def source(name: str) -> str:
    """The full text sent to Redis for script ``name``: the rules, its fragments, itself."""
    return "\n".join([lua_rules(), *(_text(fragment) for fragment in _uses(name)), _text(name)])


class Scripts:
    """The store's scripts, registered on one client (cheap: a script is sent by its SHA1).

    Args:
        redis: the client.
    """

    def __init__(self, redis: Redis) -> None:
        def script(name: str) -> AsyncScript:
            return redis.register_script(source(name))

        self.admit = script("admit")
        self.finalize = script("finalize")
        self.start = script("start")
        self.reschedule = script("reschedule")
        self.defer = script("defer")
        self.heartbeat = script("heartbeat")
        self.orphans = script("orphans")
        self.forget_running = script("forget_running")
        self.release_unstarted = script("release_unstarted")
        self.resume = script("resume")
        self.purge = script("purge")
        self.reserve = script("reserve")
        self.pause = script("pause")
        self.pause_until = script("pause_until")
        self.operating = script("operating")
        self.deployment_secret = script("deployment_secret")
        self.attempt_entry = script("attempt_entry")
        # a call's follow-up (schemas.store.calls)
        self.follow = script("follow")
        self.call_end = script("call_end")
        self.redial_start = script("redial_start")
        self.calls_due = script("calls_due")
        self.call_poll = script("call_poll")
        self.reserve_spare = script("reserve_spare")


async def in_pipeline(
    redis: Redis, build: Callable[[Pipeline], Awaitable[None]], *, transaction: bool
) -> list[Any]:
    """Send what ``build`` queues (scripts among it) as one pipeline, and return its replies.

    redis-py loads a pipeline's scripts once, when ``execute`` begins; if Redis restarts after that
    (its scripts are gone) and redis-py's retry sends the pipeline again, every script in it answers
    ``NOSCRIPT`` and runs nothing. The pipeline is then built and sent once more, which loads them
    again. Every script checks the state it changes, so what else ran the first time (a plain command
    beside them) is harmless twice.
    """
    for attempt in (1, 2):
        async with redis.pipeline(transaction=transaction) as pipe:
            await build(pipe)
            try:
                return list(await pipe.execute())
            except NoScriptError:
                if attempt == 2:
                    raise
    raise AssertionError("unreachable")
