"""The options of ``callq sandbox`` (:mod:`ops.sandbox.cli`). Pure."""

from __future__ import annotations

import argparse

import pytest

from ops.sandbox.cli import add_arguments, apply_call_options, parse_portals
from ops.sandbox.state import Sandbox


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        ([], [("default", {(1, "sandboxsecret")}, 2.0, 50)]),
        (["a:1:x", "a:2:y"], [("a", {(1, "x"), (2, "y")}, 2.0, 50)]),
        (["a:1:x:5:250", "b:3:z"], [("a", {(1, "x")}, 5.0, 250), ("b", {(3, "z")}, 2.0, 50)]),
    ],
)
def test_parse_portals(
    specs: list[str], expected: list[tuple[str, set[tuple[int, str]], float, int]]
) -> None:
    """`--portal NAME:USER_ID:CODE[:RATE:BURST]` options build portals; a repeated name adds a webhook."""
    portals = parse_portals(specs, rate=2.0, burst=50)
    assert [(p.name, p.webhooks, p.rate, p.burst) for p in portals] == expected


@pytest.mark.parametrize("spec", ["a:1", "a:x:code", "a:1:code:5", ":1:code"])
def test_parse_portals_rejects_malformed_specs(spec: str) -> None:
    """A malformed --portal value is an error."""
    with pytest.raises(ValueError):
        parse_portals([spec], rate=2.0, burst=50)


def call_options(*argv: str) -> Sandbox:
    """A sandbox with portals ``a`` and ``b`` and the call options ``argv`` applied."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--portal", "a:1:x", "--portal", "b:1:y", *argv])
    sandbox = Sandbox(parse_portals(args.portal, rate=2.0, burst=50))
    apply_call_options(sandbox, args)
    return sandbox


@pytest.mark.parametrize(
    ("argv", "mixes", "durations"),
    [
        ([], {}, {}),
        (["--call-mix", "busy=1"], {"a": {"busy": 1.0}, "b": {"busy": 1.0}}, {}),
        (
            ["--call-mix", "connected=3,no_answer=1", "--call-mix", "b:declined"],
            {"a": {"connected": 3.0, "no_answer": 1.0}, "b": {"declined": 1.0}},
            {},
        ),
        (["--call-duration", "a:0.5"], {"a": {"connected": 1.0}}, {"a": 0.5}),
        (
            ["--call-mix", "b:busy=2", "--call-duration", "7"],
            {"a": {"connected": 1.0}, "b": {"busy": 2.0}},
            {"a": 7.0, "b": 7.0},
        ),
    ],
)
def test_call_options_set_each_portals_mix(
    argv: list[str], mixes: dict[str, dict[str, float]], durations: dict[str, float]
) -> None:
    """`--call-mix [NAME:]RESULT=WEIGHT,...` and `--call-duration [NAME:]SECONDS` set how calls end, as
    the control API's `POST /_sandbox/calls/mix` does (no NAME: every portal)."""
    sandbox = call_options(*argv)
    assert sandbox.player.mix == mixes
    assert sandbox.player.duration_s == durations


def test_a_call_mix_decides_how_calls_end() -> None:
    """A portal whose mix is all busy plays every call out busy."""
    sandbox = call_options("--call-mix", "a:busy=1", "--call-duration", "a:0")
    call = sandbox.player.place("a", "c1", line="l1", number="+79110000001", now=100.0)
    assert (call.result, call.ends_at) == ("busy", 100.0)
    assert call.row()["CALL_FAILED_CODE"] == "486"


@pytest.mark.parametrize(
    "argv",
    [
        ["--call-mix", "ringing=1"],
        ["--call-mix", "busy=x"],
        ["--call-mix", "busy=-1"],
        ["--call-mix", "c:busy=1"],
        ["--call-duration", "soon"],
        ["--call-duration", "-1"],
    ],
)
def test_bad_call_options_are_refused(argv: list[str]) -> None:
    """An unknown result, a bad weight, an unknown portal or a bad duration is an error."""
    with pytest.raises(ValueError):
        call_options(*argv)
