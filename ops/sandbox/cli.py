"""``callq sandbox``: the sandbox portal as its own process (the one entry point: ``callq sandbox``).

Once it listens it prints, for each portal, the webhook URL to point callq at, and with
``--print-url`` first one line ``SANDBOX_URL=http://HOST:PORT``; logs go to stderr. It serves until
SIGTERM or SIGINT, then exits with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import structlog

from ops.sandbox.calls import CODES
from ops.sandbox.portal import (
    AUTH_REFUSALS,
    DEFAULT_CODE,
    DEFAULT_USER_ID,
    PERMISSIONS,
    SCOPES,
    SandboxPortal,
)
from ops.sandbox.server import SandboxHandle, serve_forever
from ops.sandbox.state import Sandbox


def parse_portals(specs: Sequence[str], rate: float, burst: int) -> list[SandboxPortal]:
    """Build portals from `NAME:USER_ID:CODE[:RATE:BURST]` options.

    Several options with the same NAME add webhooks to one portal.

    Args:
        specs: The `--portal` values; empty means `default:1:sandboxsecret`.
        rate: Drain rate for portals that do not name their own.
        burst: Bucket size for portals that do not name their own.

    Returns:
        The portals, in the order first named.

    Raises:
        ValueError: If a spec is malformed.
    """
    portals: dict[str, SandboxPortal] = {}
    for spec in specs or [f"default:{DEFAULT_USER_ID}:{DEFAULT_CODE}"]:
        parts = spec.split(":")
        if len(parts) not in (3, 5) or not all(parts):
            raise ValueError(f"--portal wants NAME:USER_ID:CODE[:RATE:BURST], got {spec!r}")
        name, user_id, code = parts[0], int(parts[1]), parts[2]
        portal_rate, portal_burst = (float(parts[3]), int(parts[4])) if len(parts) == 5 else (rate, burst)
        if name in portals:
            portals[name].webhooks.add((user_id, code))
        else:
            portals[name] = SandboxPortal(
                name=name, webhooks={(user_id, code)}, rate=portal_rate, burst=portal_burst
            )
    return list(portals.values())


def _names(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _optional_float(text: str) -> float | None:
    return None if text in ("", "none") else float(text)


SWITCH_OPTIONS: dict[str, tuple[str, Callable[[str], Any], str]] = {
    "--scopes": (
        "scopes",
        _names,
        f"scopes of its webhooks and apps, comma-separated, of {','.join(SCOPES)}",
    ),
    "--permissions": (
        "permissions",
        _names,
        f"telephony permissions of the webhooks' user, comma-separated, of {','.join(PERMISSIONS)}",
    ),
    "--voices": ("voices", lambda text: {voice: voice for voice in _names(text)}, "voice ids it offers"),
    "--auth-refusal": ("auth_refusal", str, f"refuse its webhooks with {' or '.join(AUTH_REFUSALS)}"),
    "--moved-to": ("moved_to", str, "it moved: answer 302 to this scheme://host[:port], same path"),
    "--operating-limit": ("operating_limit_s", float, "seconds of execution time per method and window"),
    "--operating-window": ("operating_window_s", float, "the window of that limit, seconds (600)"),
    "--processing": ("processing_s", _optional_float, "execution time counted per call, seconds"),
}
"""The portals' switches on the command line: `--OPTION [NAME=]VALUE` (no NAME: every portal)."""

_NAMED = re.compile(r"([a-z0-9_-]+)=(.*)", re.DOTALL)


def apply_switches(portals: list[SandboxPortal], args: argparse.Namespace) -> list[SandboxPortal]:
    """The portals with the switch options of ``args`` applied.

    Raises:
        ValueError: an option names no portal, or has a wrong value.
    """
    names = {portal.name for portal in portals}
    specs: dict[str, dict[str, Any]] = {name: {} for name in names}
    for option, (key, parse, _help) in SWITCH_OPTIONS.items():
        for given in getattr(args, option.removeprefix("--").replace("-", "_")) or []:
            named = _NAMED.fullmatch(given)
            target, text = (
                (named.group(1), named.group(2)) if named and named.group(1) in names else (None, given)
            )
            try:
                value = parse(text)
            except ValueError:
                raise ValueError(f"{option} {given!r}: not a valid value") from None
            for name in [target] if target else sorted(names):
                specs[name][key] = value
    return [portal.with_switches(specs[portal.name]) for portal in portals]


_PORTAL_PREFIX = re.compile(r"([a-z0-9_-]+):(.*)", re.DOTALL)


def apply_call_options(sandbox: Sandbox, args: argparse.Namespace) -> None:
    """``--call-mix [NAME:]RESULT=WEIGHT,...`` and ``--call-duration [NAME:]SECONDS``: how the portals'
    calls end (no NAME: every portal), as ``POST /_sandbox/calls/mix`` sets it.

    Raises:
        ValueError: an option names no portal, or has a wrong value.
    """
    names = sorted(sandbox.portals)
    mixes: dict[str, dict[str, float]] = {}
    durations: dict[str, float] = {}
    for option, given_list, into in (
        ("--call-mix", args.call_mix, mixes),
        ("--call-duration", args.call_duration, durations),
    ):
        for given in given_list or []:
            named = _PORTAL_PREFIX.fullmatch(given)
            target, text = (named.group(1), named.group(2)) if named else (None, given)
            if target is not None and target not in names:
                raise ValueError(f"{option} {given!r}: no portal {target!r}")
            try:
                value: Any = _mix(text) if option == "--call-mix" else float(text)
            except ValueError:
                raise ValueError(f"{option} {given!r}: not a valid value") from None
            for name in [target] if target else names:
                into[name] = value
    for name in sorted(set(mixes) | set(durations)):
        mix = mixes.get(name) or sandbox.player.mix.get(name) or {"connected": 1.0}
        try:
            sandbox.player.set_mix(name, mix, duration_s=durations.get(name))
        except ValueError as exc:
            raise ValueError(f"--call-mix/--call-duration for {name!r}: {exc}") from None


def _mix(text: str) -> dict[str, float]:
    """``connected=3,busy=1`` as weights."""
    mix = {}
    for item in _names(text):
        result, _, weight = item.partition("=")
        mix[result.strip()] = float(weight) if weight else 1.0
    if not mix:
        raise ValueError("empty mix")
    return mix


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``callq sandbox``."""
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8024, help="0 picks a free port")
    parser.add_argument(
        "--portal",
        action="append",
        default=[],
        metavar="NAME:USER_ID:CODE[:RATE:BURST]",
        help=f"a portal and one of its webhooks, repeatable (default default:{DEFAULT_USER_ID}:{DEFAULT_CODE})",
    )
    parser.add_argument("--rate", type=float, default=2.0, help="leaky-bucket drain rate per second")
    parser.add_argument("--burst", type=int, default=50, help="leaky-bucket size")
    parser.add_argument("--print-url", action="store_true", help="print SANDBOX_URL=... once listening")
    parser.add_argument("--quiet", action="store_true", help="log warnings only, not every request")
    for option, (_key, _parse, text) in SWITCH_OPTIONS.items():
        parser.add_argument(option, action="append", metavar="[NAME=]VALUE", help=text)
    parser.add_argument(
        "--call-mix",
        action="append",
        metavar="[NAME:]RESULT=WEIGHT,...",
        help=f"how its calls end, by weight, of {','.join(CODES)} (default connected=1)",
    )
    parser.add_argument(
        "--call-duration",
        action="append",
        metavar="[NAME:]SECONDS",
        help="seconds after which each call ends and its statistics row appears (default 2)",
    )


async def run(args: argparse.Namespace) -> int:
    """Serve the portals until SIGTERM or SIGINT; 0 after a clean shutdown, 2 for a bad ``--portal`` or switch."""
    try:
        portals = apply_switches(parse_portals(args.portal, args.rate, args.burst), args)
        sandbox = Sandbox(portals)
        apply_call_options(sandbox, args)
    except ValueError as exc:
        print(f"callq sandbox: {exc}", file=sys.stderr)
        return 2
    if args.quiet:
        structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def announce(handle: SandboxHandle) -> None:
        if args.print_url:
            print(f"SANDBOX_URL={handle.base_url}", flush=True)
        for portal in portals:
            # the sandbox's own code, not a real secret: the person needs it to point callq here
            print(
                f"sandbox portal {portal.name!r} listening; use CALLQ_WEBHOOK_URL={handle.webhook_url(portal.name)}"
                " CALLQ_TIMEZONE=UTC",
                flush=True,
            )

    await serve_forever(sandbox, args.host, args.port, on_ready=announce, stop=stop)
    return 0
