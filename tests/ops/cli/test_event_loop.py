"""Tests for ops.cli.event_loop: callq's processes run on uvloop, or on asyncio's loop when asked."""

from __future__ import annotations

import asyncio
import sys

import pytest
import uvloop

from ops.cli import event_loop
from ops.cli.main import build_parser


async def _loop_type() -> type[asyncio.AbstractEventLoop]:
    return type(asyncio.get_running_loop())


def test_a_process_runs_on_uvloop_by_default() -> None:
    """``run`` without a choice runs the coroutine on a uvloop loop and returns its result."""
    assert issubclass(event_loop.run(_loop_type()), uvloop.Loop)


def test_asyncio_loop_on_request() -> None:
    """``event_loop="asyncio"`` runs on asyncio's own loop."""
    loop_type = event_loop.run(_loop_type(), event_loop="asyncio")
    assert not issubclass(loop_type, uvloop.Loop)


def test_without_uvloop_the_asyncio_loop_stands_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where uvloop cannot be imported (no wheel for the platform), asyncio's loop is used."""
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` raise ImportError
    assert event_loop.loop_factory("uvloop") is asyncio.new_event_loop


def test_the_command_line_chooses_the_loop() -> None:
    """``callq --event-loop`` takes uvloop (the default) or asyncio, before the verb."""
    parser = build_parser()
    assert parser.parse_args(["status", "x"]).event_loop == "uvloop"
    assert parser.parse_args(["--event-loop", "asyncio", "status", "x"]).event_loop == "asyncio"
