"""The event loop a callq process runs on: uvloop's, or asyncio's own on request.

uvloop (libuv under asyncio's API) does the loop's own work (scheduling callbacks, reading and
writing sockets) in C: a worker spends about a tenth less CPU per job on it than on asyncio's
loop (docs/benchmarks.md, "Issue 16: CPU per job"). ``--event-loop asyncio`` is the way back, should a library ever
misbehave on it; where uvloop is not installed (it ships no Windows wheel), asyncio's loop is used.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

EventLoopName = Literal["uvloop", "asyncio"]
EVENT_LOOPS: tuple[EventLoopName, ...] = ("uvloop", "asyncio")
DEFAULT_EVENT_LOOP: EventLoopName = "uvloop"


def loop_factory(name: EventLoopName = DEFAULT_EVENT_LOOP) -> Callable[[], asyncio.AbstractEventLoop]:
    """What makes a new loop of that name (asyncio's when uvloop is asked for but not installed).

    Args:
        name: ``uvloop`` or ``asyncio``.
    """
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:  # no wheel for this platform: asyncio's loop does the same, slower
            pass
        else:
            return uvloop.new_event_loop
    return asyncio.new_event_loop


def run(main: Coroutine[Any, Any, T], *, event_loop: EventLoopName = DEFAULT_EVENT_LOOP) -> T:
    """``asyncio.run(main)`` on the chosen loop.

    Args:
        main: the process's main coroutine.
        event_loop: ``uvloop`` (default) or ``asyncio``.

    Returns:
        What ``main`` returns.
    """
    with asyncio.Runner(loop_factory=loop_factory(event_loop)) as runner:
        return runner.run(main)
