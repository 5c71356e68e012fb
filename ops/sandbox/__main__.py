"""Run the sandbox portal as its own process: `python -m ops.sandbox --print-url ...`.

With `--print-url` it prints exactly one line, `SANDBOX_URL=http://HOST:PORT`, to stdout once
it listens; logs go to stderr. It serves until SIGTERM or SIGINT, then exits with status 0.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import Sequence

import structlog

from ops.sandbox.portal import DEFAULT_CODE, DEFAULT_USER_ID, SandboxPortal
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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m ops.sandbox", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--portal", action="append", default=[], metavar="NAME:USER_ID:CODE[:RATE:BURST]", help="repeatable"
    )
    parser.add_argument("--rate", type=float, default=2.0, help="leaky-bucket drain rate per second")
    parser.add_argument("--burst", type=int, default=50, help="leaky-bucket size")
    parser.add_argument("--print-url", action="store_true", help="print SANDBOX_URL=... once listening")
    parser.add_argument("--quiet", action="store_true", help="log warnings only, not every request")
    return parser


async def _serve(sandbox: Sandbox, host: str, port: int, print_url: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def announce(handle: SandboxHandle) -> None:
        if print_url:
            print(f"SANDBOX_URL={handle.base_url}", flush=True)

    await serve_forever(sandbox, host, port, on_ready=announce, stop=stop)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse arguments, serve until a signal arrives, and return the exit status.

    Args:
        argv: Arguments without the program name; None reads `sys.argv`.

    Returns:
        0 after a clean shutdown, 2 for bad arguments.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        portals = parse_portals(args.portal, args.rate, args.burst)
    except ValueError as exc:
        parser.error(str(exc))
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING if args.quiet else logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
    )
    asyncio.run(_serve(Sandbox(portals), args.host, args.port, args.print_url))
    return 0


if __name__ == "__main__":
    sys.exit(main())
