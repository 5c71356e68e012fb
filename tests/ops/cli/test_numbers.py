"""Numeric command-line options (:mod:`ops.cli.numbers`) and durations: out of range, negative, NaN,
infinite or overflowing values are refused with one line, never a traceback. Pure."""

from __future__ import annotations

import argparse

import pytest

from ops.cli.numbers import int_in, seconds_in
from ops.cli.timeparse import TimeParseError, parse_duration


@pytest.mark.parametrize("text", ["-1", "0", "100001", "1e3", "x", "99999999999999999999999"])
def test_a_limit_out_of_range_is_refused(text: str) -> None:
    """--limit takes 1..100000 whole numbers only."""
    with pytest.raises(argparse.ArgumentTypeError):
        int_in(1, 100_000)(text)


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "-1", "0", "1e309", "3601"])
def test_seconds_out_of_range_or_not_finite_are_refused(text: str) -> None:
    """Timeouts must be finite and within their range."""
    with pytest.raises(argparse.ArgumentTypeError):
        seconds_in(0, 3600, above=True)(text)


def test_values_in_range_are_kept() -> None:
    """In range: the value itself."""
    assert int_in(1, 100_000)("100") == 100
    assert seconds_in(0, 3600, above=True)("2.5") == 2.5


@pytest.mark.parametrize("text", ["999999999999d", "3651d", "99999999999999999999", "1e400"])
def test_a_huge_duration_is_refused_not_overflowed(text: str) -> None:
    """--in 999999999999d is a clear error, not timedelta's OverflowError."""
    with pytest.raises(TimeParseError):
        parse_duration(text)


def test_every_numeric_option_of_every_verb_is_checked() -> None:
    """No verb reads a number with a bare int/float: each uses a checked type. (The sandbox, a Bitrix24
    double that shares no code with callq, keeps its own.)"""
    from ops.cli.main import build_parser

    parser = build_parser()
    bare = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            stack = list(action.choices.values())
            while stack:
                sub = stack.pop()
                for inner in sub._actions:
                    if isinstance(inner, argparse._SubParsersAction):
                        stack += list(inner.choices.values())
                    elif inner.type in (int, float) and sub.prog != "callq sandbox":
                        bare.append((sub.prog, inner.dest))
    assert bare == []
