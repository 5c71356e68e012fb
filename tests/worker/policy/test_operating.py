"""The execution-time budget: when callback.start pauses, and for how long after a refusal. Pure."""

from __future__ import annotations

from typing import Any

import pytest

from worker.policy.operating import NEXT_BUCKET_S, SKEW_S, OperatingReading, budget_pause_s, refusal_wait_s

NOW = 1_773_736_000.0


def reading(operating: float, reset_in_s: float) -> OperatingReading:
    """A reading taken now, its oldest part released ``reset_in_s`` from now."""
    return OperatingReading(operating_s=operating, reset_at_s=NOW + reset_in_s, finish_s=NOW)


@pytest.mark.parametrize(
    ("operating", "reset_in_s", "budget", "pause"),
    [
        (0.0, 600.0, 480.0, 0.0),
        (431.9, 300.0, 480.0, 0.0),  # under 90 % of the budget
        (432.0, 300.0, 480.0, 300.0 + SKEW_S),  # at 90 %: pause until the oldest part leaves
        (479.0, 12.0, 480.0, 12.0 + SKEW_S),
        (600.0, 1.0, 480.0, 1.0 + SKEW_S),  # over (another application spent it)
        (470.0, 0.0, 480.0, 0.0),  # the oldest part is released now: the next answer says the sum
        (470.0, -5.0, 480.0, 0.0),
        (18.0, 3.0, 20.0, 3.0 + SKEW_S),
        (479.0, 1e12, 480.0, NEXT_BUCKET_S),  # a reset far past the 10-minute window: not believed
        (17.9, 3.0, 20.0, 0.0),
    ],
)
def test_budget_pause(operating: float, reset_in_s: float, budget: float, pause: float) -> None:
    """callback.start pauses once its summed time reaches 90 % of the budget, until the oldest part leaves."""
    assert budget_pause_s(reading(operating, reset_in_s), budget_s=budget, now_s=NOW) == pytest.approx(pause)


@pytest.mark.parametrize(
    ("last", "wait"),
    [
        (reading(500.0, 42.0), 42.0 + SKEW_S),
        (reading(500.0, 0.5), 0.5 + SKEW_S),
        (reading(500.0, 0.0), NEXT_BUCKET_S),  # released already and still refused: the next bucket
        (reading(500.0, -30.0), NEXT_BUCKET_S),
        (reading(500.0, 600.0), 600.0 + SKEW_S),  # the whole window: believable
        (reading(500.0, 601.5), NEXT_BUCKET_S),  # further than the window: not believed
        (OperatingReading(500.0, NOW * 1000, NOW), NEXT_BUCKET_S),  # milliseconds, not seconds
        (OperatingReading(500.0, 1e300, NOW), NEXT_BUCKET_S),
        (None, NEXT_BUCKET_S),
    ],
)
def test_refusal_wait(last: OperatingReading | None, wait: float) -> None:
    """After OPERATION_TIME_LIMIT callq waits until operating_reset_at, or a minute when that is unknown or past."""
    assert refusal_wait_s(last, now_s=NOW) == pytest.approx(wait)


@pytest.mark.parametrize(
    ("timing", "expected"),
    [
        (
            {"start": 1.0, "finish": 2.5, "operating": 0.957, "operating_reset_at": 1773736666},
            OperatingReading(0.957, 1773736666.0, 2.5),
        ),
        ({"start": 1.0, "operating": 3, "operating_reset_at": 9}, OperatingReading(3.0, 9.0, 1.0)),
        ({"operating": 3, "operating_reset_at": 9}, OperatingReading(3.0, 9.0, 0.0)),
        ({"start": 1.0, "finish": 2.0}, None),
        ({"operating": "3", "operating_reset_at": 9}, None),
        ({"operating": True, "operating_reset_at": 9}, None),
        ({"operating": 3, "operating_reset_at": float("inf")}, None),  # JSON's Infinity, NaN: no reading
        ({"operating": float("nan"), "operating_reset_at": 9}, None),
        ({"operating": 3, "operating_reset_at": 9, "finish": float("inf")}, OperatingReading(3.0, 9.0, 0.0)),
        (None, None),
        ([], None),
    ],
)
def test_reading_of_a_time_object(timing: Any, expected: OperatingReading | None) -> None:
    """A `time` object gives a reading only when it carries both figures as numbers."""
    assert OperatingReading.of(timing) == expected
    if expected is not None:
        assert OperatingReading.from_dict(expected.to_dict()) == expected
