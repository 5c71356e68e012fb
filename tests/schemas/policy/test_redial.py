"""The redial policy and the follow-up's polling: table tests. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schemas.policy.calendar import Calendar
from schemas.policy.call_result import CallKind
from schemas.policy.followup import FollowTiming, past_horizon, poll_delay_s
from schemas.policy.hours import parse_hours
from schemas.policy.redial import EndCall, EndReason, Redial, RedialPolicy, decide_redial

K = CallKind
TZ = ZoneInfo("Europe/Moscow")
CAL = Calendar(
    tz=TZ, weekly=parse_hours({d: "09:00-18:00" for d in ("mon", "tue", "wed", "thu", "fri")}, where="hours")
)
MONDAY_10 = datetime(2026, 3, 2, 10, 0, tzinfo=TZ)
FRIDAY_1755 = datetime(2026, 3, 6, 17, 55, tzinfo=TZ)
POLICY = RedialPolicy(delays_s=(300.0, 900.0), max_redials=2)


@pytest.mark.parametrize(
    ("kind", "done", "now", "deadline", "expected"),
    [
        (K.CONNECTED, 0, MONDAY_10, None, EndCall(EndReason.CONNECTED)),
        (K.DECLINED, 0, MONDAY_10, None, EndCall(EndReason.NOT_REDIALLED)),
        (K.INVALID_NUMBER, 0, MONDAY_10, None, EndCall(EndReason.NOT_REDIALLED)),
        (K.FAILED, 0, MONDAY_10, None, EndCall(EndReason.NOT_REDIALLED)),
        (K.UNKNOWN, 0, MONDAY_10, None, EndCall(EndReason.UNKNOWN)),
        (K.BUSY, 0, MONDAY_10, None, Redial(MONDAY_10 + timedelta(seconds=300), 1)),
        (K.NO_ANSWER, 1, MONDAY_10, None, Redial(MONDAY_10 + timedelta(seconds=900), 2)),
        (K.UNAVAILABLE, 0, MONDAY_10, None, Redial(MONDAY_10 + timedelta(seconds=300), 1)),
        (K.BUSY, 2, MONDAY_10, None, EndCall(EndReason.REDIALS_EXHAUSTED)),
        # closing time: the redial waits for Monday's opening
        (K.BUSY, 0, FRIDAY_1755, None, Redial(datetime(2026, 3, 9, 9, 0, tzinfo=TZ), 1)),
        # ... unless the deadline comes first
        (K.BUSY, 0, FRIDAY_1755, datetime(2026, 3, 7, 12, 0, tzinfo=TZ), "deadline"),
        (K.BUSY, 0, MONDAY_10, MONDAY_10 + timedelta(seconds=300), "deadline"),
    ],
)
def test_decide_redial(
    kind: CallKind, done: int, now: datetime, deadline: datetime | None, expected: Redial | EndCall | str
) -> None:
    """Only known, configured failures redial, after their delay, inside hours, before the deadline."""
    decision = decide_redial(
        POLICY, kind, redials_done=done, now=now, calendar=CAL, not_before=None, deadline=deadline
    )
    if expected == "deadline":
        assert isinstance(decision, EndCall)
        assert decision.reason is EndReason.DEADLINE
    else:
        assert decision == expected


def test_redials_off() -> None:
    """max_redials = 0 never redials."""
    policy = RedialPolicy(max_redials=0)
    decision = decide_redial(
        policy, K.BUSY, redials_done=0, now=MONDAY_10, calendar=CAL, not_before=None, deadline=None
    )
    assert decision == EndCall(EndReason.REDIALS_EXHAUSTED)


def test_kind_not_configured_is_not_redialled() -> None:
    """A portal that redials only busy lines does not redial an unanswered call."""
    policy = RedialPolicy(redial_on=frozenset({K.BUSY}))
    decision = decide_redial(
        policy, K.NO_ANSWER, redials_done=0, now=MONDAY_10, calendar=CAL, not_before=None, deadline=None
    )
    assert decision == EndCall(EndReason.NOT_REDIALLED)


@pytest.mark.parametrize("kind", [K.CONNECTED, K.DECLINED, K.INVALID_NUMBER, K.UNKNOWN])
def test_never_configurable(kind: CallKind) -> None:
    """A connected, declined, invalid or unknown call cannot be configured to redial."""
    with pytest.raises(ValueError, match="never redialled"):
        RedialPolicy(redial_on=frozenset({kind}))


@pytest.mark.parametrize(("redial", "delay"), [(1, 60.0), (2, 120.0), (3, 120.0), (7, 120.0)])
def test_last_delay_repeats(redial: int, delay: float) -> None:
    """Redials past the list of delays wait the last one."""
    assert RedialPolicy(delays_s=(60.0, 120.0), max_redials=9).delay_s(redial) == delay


@pytest.mark.parametrize(
    ("polls", "delay"), [(0, 20.0), (1, 40.0), (2, 80.0), (3, 160.0), (4, 300.0), (50, 300.0)]
)
def test_poll_delay(polls: int, delay: float) -> None:
    """Statistics are asked for with doubling waits, capped."""
    assert poll_delay_s(FollowTiming(first_poll_s=20, max_poll_s=300), polls_done=polls) == delay


@pytest.mark.parametrize(("elapsed_ms", "past"), [(0, False), (3_599_999, False), (3_600_000, True)])
def test_horizon(elapsed_ms: int, past: bool) -> None:
    """After the horizon a call's end is given up on."""
    start = int(datetime(2026, 3, 2, tzinfo=UTC).timestamp() * 1000)
    assert past_horizon(FollowTiming(horizon_s=3600), placed_ms=start, now_ms=start + elapsed_ms) is past
