"""The options of ``callq sandbox`` (:mod:`ops.sandbox.cli`). Pure."""

from __future__ import annotations

import pytest

from ops.sandbox.cli import parse_portals


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
