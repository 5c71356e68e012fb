"""Unit tests of faults and fault plans (no HTTP)."""

from __future__ import annotations

from typing import Any

import pytest

from ops.sandbox.faults import CALLBACK_START, Fault, FaultKind, default_executed
from ops.sandbox.plan import FaultPlan, RandomFaults


@pytest.mark.parametrize(
    ("status", "executed"),
    [
        (400, False),
        (401, False),
        (403, False),
        (429, False),
        (503, False),
        (500, True),
        (502, True),
        (504, True),
    ],
)
def test_default_executed_by_status(status: int, executed: bool) -> None:
    """Server errors other than 503 count as raised after the call was placed."""
    assert default_executed(status) is executed
    assert Fault.error(status, "CODE", "text").executed is executed
    assert Fault.raw(status, "<html></html>").executed is executed


@pytest.mark.parametrize(
    "fault",
    [
        Fault.error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"),
        Fault.error(500, "INTERNAL_SERVER_ERROR", "Internal error", executed=False),
        Fault.raw(502, "<html>Bad Gateway</html>", executed=True),
        Fault.raw(200, "not json", content_type="text/plain"),
        Fault.delay(1.5),
        Fault.hang(),
        Fault.hang(executed=False),
        Fault.reset(),
    ],
)
def test_fault_round_trips_through_dict(fault: Fault) -> None:
    """`Fault.from_dict(fault.to_dict())` gives the same fault back."""
    assert Fault.from_dict(fault.to_dict()) == fault


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ({"kind": "explode"}, "explode"),
        ({"kind": "error", "status": 503}, "code"),
        ({"kind": "delay"}, "seconds"),
        ({"kind": "delay", "seconds": -1}, "negative"),
        ({"kind": "delay", "seconds": None}, "wrong type"),
        ({"kind": "hang", "executed": "yes"}, "executed"),
    ],
)
def test_bad_fault_specs_are_rejected(spec: dict[str, Any], match: str) -> None:
    """An unknown kind, a missing field or a wrong type raises ValueError naming the problem."""
    with pytest.raises(ValueError, match=match):
        Fault.from_dict(spec)


def test_queue_is_consumed_in_order_per_portal_and_method() -> None:
    """Each request takes the first queued fault that matches its portal and method."""
    plan = FaultPlan()
    first, second, other = Fault.error(503, "A", "a"), Fault.error(500, "B", "b"), Fault.reset()
    plan.add([first, second])
    plan.add([other], portal="acme")
    plan.add([Fault.hang()], method="voximplant.line.get")
    assert plan.take("acme", CALLBACK_START) is first
    assert plan.take("default", CALLBACK_START) is second
    assert plan.take("default", CALLBACK_START) is None
    assert plan.take("acme", CALLBACK_START) is other
    assert plan.take("acme", "voximplant.line.get") == Fault.hang()
    assert plan.take("acme", CALLBACK_START) is None


def test_queued_faults_come_before_random_mode() -> None:
    """Random mode only decides once no queued fault matches."""
    plan = FaultPlan(random_mode=RandomFaults(1.0, (Fault.reset(),), seed=1))
    plan.add([Fault.hang()])
    assert plan.take("default", CALLBACK_START) == Fault.hang()
    assert plan.take("default", CALLBACK_START) == Fault.reset()


def test_random_mode_is_reproducible_by_seed() -> None:
    """Two random modes with the same seed make the same choices; another seed differs."""
    kinds = (Fault.error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests"), Fault.reset(), Fault.delay(0))

    def draws(seed: int) -> list[FaultKind | None]:
        mode = RandomFaults(0.5, kinds, seed=seed)
        return [None if (f := mode.draw("default", CALLBACK_START)) is None else f.kind for _ in range(40)]

    assert draws(42) == draws(42)
    assert draws(42) != draws(7)
    assert {kind for kind in draws(42)} >= {None, FaultKind.ERROR}


@pytest.mark.parametrize(("ratio", "expected_failures"), [(0.0, 0), (1.0, 25)])
def test_random_mode_extremes(ratio: float, expected_failures: int) -> None:
    """A failure ratio of 0 never fails and 1 always fails."""
    mode = RandomFaults(ratio, (Fault.reset(),), seed=3)
    assert sum(mode.draw("default", CALLBACK_START) is not None for _ in range(25)) == expected_failures


def test_random_mode_respects_portal_and_method() -> None:
    """Random mode leaves other portals and methods alone."""
    mode = RandomFaults(1.0, (Fault.reset(),), portal="acme")
    assert mode.draw("default", CALLBACK_START) is None
    assert mode.draw("acme", "voximplant.line.get") is None
    assert mode.draw("acme", CALLBACK_START) == Fault.reset()


@pytest.mark.parametrize("ratio", [-0.1, 1.5])
def test_random_mode_rejects_ratio_outside_unit_interval(ratio: float) -> None:
    """failure_ratio must lie within [0, 1]."""
    with pytest.raises(ValueError, match="failure_ratio"):
        RandomFaults(ratio, (Fault.reset(),))


def test_random_mode_round_trips_through_dict() -> None:
    """The JSON form of random mode reads back to the same settings."""
    mode = RandomFaults(0.25, (Fault.reset(), Fault.delay(0.1)), seed=9, portal="acme")
    again = RandomFaults.from_dict(mode.to_dict())
    assert again.to_dict() == mode.to_dict()


def test_clear_drops_queue_and_random_mode() -> None:
    """clear() empties the plan and reports how many queued faults it dropped."""
    plan = FaultPlan(random_mode=RandomFaults(1.0, (Fault.reset(),)))
    plan.add([Fault.hang()] * 3)
    assert plan.clear() == 3
    assert plan.to_dict() == {"pending": [], "random": None}
