"""The reading of CALL_FAILED_CODE and a statistics row or event into a call's end. Pure."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.policy.call_result import MAX_CALL_DURATION_S, CallKind, call_end_from_fields, classify_call

K = CallKind


@pytest.mark.parametrize(
    ("code", "duration_s", "kind"),
    [
        ("200", 42, K.CONNECTED),
        ("200", 1, K.CONNECTED),
        ("200", 0, K.NO_ANSWER),
        ("304", 0, K.NO_ANSWER),
        ("486", 0, K.BUSY),
        ("603", 0, K.DECLINED),
        ("603-S", 0, K.DECLINED),
        ("603-s", 0, K.DECLINED),
        ("404", 0, K.INVALID_NUMBER),
        ("480", 0, K.UNAVAILABLE),
        ("484", 0, K.UNAVAILABLE),
        ("503", 0, K.UNAVAILABLE),
        ("402", 0, K.FAILED),
        ("423", 0, K.FAILED),
        ("403", 0, K.FAILED),
        ("OTHER", 0, K.FAILED),
        ("999", 0, K.FAILED),
        (" 486 ", 0, K.BUSY),
        (None, 0, K.UNKNOWN),
        (None, 30, K.UNKNOWN),
    ],
)
def test_classify_call(code: str | None, duration_s: int, kind: CallKind) -> None:
    """Each documented CALL_FAILED_CODE maps to one kind; only 200 with talk time is connected."""
    assert classify_call(code, duration_s) is kind


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (
            {
                "CALL_ID": "c1",
                "CALL_FAILED_CODE": "200",
                "CALL_DURATION": "17",
                "CALL_START_DATE": "2026-01-01T10:00:00+03:00",
            },
            ("c1", K.CONNECTED, "200", 17, "2026-01-01T10:00:00+03:00"),
        ),
        ({"CALL_ID": "c2", "CALL_FAILED_CODE": 486, "CALL_DURATION": 0}, ("c2", K.BUSY, "486", 0, None)),
        ({"CALL_ID": "c3", "CALL_DURATION": "x"}, ("c3", K.FAILED, None, 0, None)),
        ({"CALL_ID": "c4", "CALL_FAILED_CODE": "", "CALL_DURATION": "-3"}, ("c4", K.FAILED, None, 0, None)),
        (
            {"CALL_ID": "c5", "CALL_FAILED_CODE": "200", "CALL_DURATION": "1e400"},
            ("c5", K.NO_ANSWER, "200", 0, None),
        ),
        (
            {"CALL_ID": "c6", "CALL_FAILED_CODE": "200", "CALL_DURATION": "nan"},
            ("c6", K.NO_ANSWER, "200", 0, None),
        ),
    ],
)
def test_call_end_from_fields(fields: dict[str, Any], expected: tuple[Any, ...]) -> None:
    """A row or event becomes a call end; an ended row without a code is a known failure, not unknown."""
    end = call_end_from_fields(fields, source="pull")
    assert end is not None
    assert (end.call_id, end.kind, end.code, end.duration_s, end.started_at) == expected
    assert end.to_dict()["connected"] is (end.kind is K.CONNECTED)


def test_call_end_needs_a_call_id() -> None:
    """Without a CALL_ID there is nothing to match a job with."""
    assert call_end_from_fields({"CALL_FAILED_CODE": "200"}, source="push") is None


@pytest.mark.parametrize(
    ("sent", "read"), [("1e12", 86_400), ("1e300", 86_400), ("86401", 86_400), ("60", 60)]
)
def test_a_duration_is_at_most_a_day(sent: str, read: int) -> None:
    """A ``CALL_DURATION`` over a day (a broken or hostile value) is read as a day, on push and pull
    alike, so that the time to connect cannot overflow the date arithmetic."""
    end = call_end_from_fields(
        {"CALL_ID": "c", "CALL_FAILED_CODE": "200", "CALL_DURATION": sent}, source="push"
    )
    assert end is not None and end.duration_s == read == min(read, MAX_CALL_DURATION_S)
