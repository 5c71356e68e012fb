"""The reason label of a dropped result: a bounded set, from the script's verdict and state. Pure."""

from __future__ import annotations

import pytest

from worker.policy.dropped import DROPPED_REASONS, dropped_reason


@pytest.mark.parametrize(
    ("verdict", "state", "reason"),
    [
        ("missing", None, "missing"),
        ("missing", "", "missing"),
        ("final", "succeeded", "final"),
        ("superseded", "running", "superseded"),
        ("elsewhere", "cancelled", "final"),
        ("elsewhere", "dead", "final"),
        ("elsewhere", "scheduled", "other"),
        ("busy", "running", "other"),
        ("refused", "retrying", "other"),
        ("a-verdict-from-the-future", None, "other"),
    ],
)
def test_dropped_reason(verdict: str, state: str | None, reason: str) -> None:
    """Each verdict maps to one of the few reasons; a final state found says `final` whatever the verdict."""
    assert dropped_reason(verdict, state) == reason
    assert reason in DROPPED_REASONS
