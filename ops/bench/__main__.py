"""``python -m ops.bench [--quick] [--only NAME ...]``: run the benchmarks and print their figures."""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import sys
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any

from ops.bench import (
    dashboard,
    dedupe_cost,
    follow_cost,
    intake,
    lateness,
    memory,
    rate_limit,
    redaction,
    throughput,
)
from ops.cli.logs import configure_logging

BENCHES: dict[str, Callable[..., Coroutine[Any, Any, dict[str, Any]]]] = {
    "rate_limit": rate_limit.run,
    "dedupe_cost": dedupe_cost.run,
    "follow_cost": follow_cost.run,
    "throughput": throughput.run,
    "intake": intake.run,
    "memory": memory.run,
    "lateness": lateness.run,
    "dashboard": dashboard.run,
    "redaction": redaction.run,
}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.bench")
    parser.add_argument(
        "--quick", action="store_true", help="seconds, not minutes: checks the benchmarks work"
    )
    parser.add_argument("--only", action="append", choices=sorted(BENCHES), help="run only these")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    # admission runs in this process for some benchmarks: log as production does, warnings only
    configure_logging(json_output=True, level="WARNING")
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.processor() or ''} cores={_cores()}".strip(),
        "python": platform.python_version(),
        "quick": args.quick,
    }
    for name in args.only or BENCHES:
        print(f"running {name}…", file=sys.stderr, flush=True)
        results[name] = asyncio.run(BENCHES[name](quick=args.quick))
        if not args.json:
            print(f"{name}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in results[name].items()), flush=True)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _cores() -> int:
    import os

    return os.cpu_count() or 0


if __name__ == "__main__":
    sys.exit(main())
