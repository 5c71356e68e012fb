"""Numeric command-line options, checked where argparse reads them. Pure.

Every numeric option of every verb uses one of these as its argparse ``type``: a value out of range,
negative where that means nothing, NaN or infinite is refused by argparse itself (one line on stderr,
exit 2), never a traceback further on (an ``OverflowError`` from ``timedelta``, a negative ``LIMIT``).
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type``: a whole number from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: from {low} to {high}")
        return value

    return parse


def seconds_in(low: float, high: float, *, above: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite number of seconds from ``low`` (excluded with ``above``) to ``high``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
        if not math.isfinite(value) or value > high or value < low or (above and value == low):
            bound = f"above {low:g}" if above else f"from {low:g}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: {bound} to {high:g} seconds")
        return value

    return parse
