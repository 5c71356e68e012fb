"""What a callback's call came to: Bitrix24's ``CALL_FAILED_CODE`` (and duration) read as a kind. Pure.

A ``succeeded`` job means Bitrix24 accepted ``voximplant.callback.start``; the call it placed ends
later, and its end is known from ``voximplant.statistic.get`` (pull) or the ``OnVoximplantCallEnd``
event (push), both carrying ``CALL_FAILED_CODE``, ``CALL_FAILED_REASON``, ``CALL_DURATION`` and
``CALL_START_DATE``. :func:`classify_call` is the one reading of them:

=========================  ===================  =================================================
``CALL_FAILED_CODE``       kind                 why
=========================  ===================  =================================================
``200``, duration > 0      ``connected``        the two sides spoke (the only "client reached")
``200``, duration 0        ``no_answer``        "success" with no second of talk: nobody spoke
``304``                    ``no_answer``        missed
``486``                    ``busy``             busy
``603``, ``603-S``         ``declined``         declined, or cancelled by a side
``404``                    ``invalid_number``   the number does not exist
``480``, ``484``, ``503``  ``unavailable``      temporarily unavailable, direction unavailable
``402``, ``423``, ``403``  ``failed``           funds, a block, forbidden: the portal's problem
``OTHER``, anything else   ``failed``           a known end, but not one to redial by default
=========================  ===================  =================================================

``unknown`` is no code at all: the call's end never arrived within the follow-up horizon. It is
never redialled (:mod:`schemas.policy.redial`): the client may have been reached.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class CallKind(StrEnum):
    """What a call came to, as callq reads ``CALL_FAILED_CODE``."""

    CONNECTED = "connected"
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    DECLINED = "declined"
    INVALID_NUMBER = "invalid_number"
    UNAVAILABLE = "unavailable"
    FAILED = "failed"
    UNKNOWN = "unknown"


KNOWN_FAILURES = frozenset(CallKind) - {CallKind.CONNECTED, CallKind.UNKNOWN}
"""A call that ended, known not to have reached the client: only these can be redialled."""

_BY_CODE: Mapping[str, CallKind] = {
    "304": CallKind.NO_ANSWER,
    "486": CallKind.BUSY,
    "603": CallKind.DECLINED,
    "603-S": CallKind.DECLINED,
    "404": CallKind.INVALID_NUMBER,
    "480": CallKind.UNAVAILABLE,
    "484": CallKind.UNAVAILABLE,
    "503": CallKind.UNAVAILABLE,
    "402": CallKind.FAILED,
    "423": CallKind.FAILED,
    "403": CallKind.FAILED,
    "OTHER": CallKind.FAILED,
}


def classify_call(code: str | None, duration_s: int) -> CallKind:
    """Read a call's end.

    Args:
        code: ``CALL_FAILED_CODE`` as Bitrix24 sent it (``"200"``, ``"603-S"``, ...), or None when
            no end is known.
        duration_s: ``CALL_DURATION`` in seconds.

    Returns:
        The kind (see the module's table).
    """
    if code is None:
        return CallKind.UNKNOWN
    code = code.strip().upper()
    if code == "200":
        return CallKind.CONNECTED if duration_s > 0 else CallKind.NO_ANSWER
    return _BY_CODE.get(code, CallKind.FAILED)


@dataclass(frozen=True)
class CallEnd:
    """One call's end as Bitrix24 reported it (a statistics row or an ``OnVoximplantCallEnd``).

    Attributes:
        call_id: ``CALL_ID``.
        kind: what it came to (:func:`classify_call`).
        code: ``CALL_FAILED_CODE`` (None: unknown).
        reason: ``CALL_FAILED_REASON`` (text from the portal: masked before it is stored).
        duration_s: ``CALL_DURATION``.
        started_at: ``CALL_START_DATE`` as sent (ISO 8601), or None.
        source: ``push``, ``pull`` or ``horizon`` (nothing arrived in time).
    """

    call_id: str
    kind: CallKind
    code: str | None = None
    reason: str | None = None
    duration_s: int = 0
    started_at: str | None = None
    source: str = "pull"

    @property
    def connected(self) -> bool:
        """Whether the client was reached."""
        return self.kind is CallKind.CONNECTED

    def to_dict(self) -> dict[str, Any]:
        """The stored form (the record's ``call:N`` fields, the published call result)."""
        return {
            "call_id": self.call_id,
            "result": str(self.kind),
            "connected": self.connected,
            "code": self.code,
            "reason": self.reason,
            "duration_s": self.duration_s,
            "started_at": self.started_at,
            "source": self.source,
        }


MAX_CALL_DURATION_S = 86_400
"""A ``CALL_DURATION`` longer than a day is no call's: read as a day (a hostile or broken value such as
``1e12`` must not overflow the date arithmetic of the time to connect)."""


def call_end_from_fields(fields: Mapping[str, Any], *, source: str) -> CallEnd | None:
    """A call's end from a statistics row or an event's ``data``; None without a ``CALL_ID``.

    Args:
        fields: ``CALL_ID``, ``CALL_FAILED_CODE``, ``CALL_FAILED_REASON``, ``CALL_DURATION``,
            ``CALL_START_DATE`` (strings or numbers, as the portal sent them); a duration is read
            as 0 to :data:`MAX_CALL_DURATION_S` seconds.
        source: ``push`` or ``pull``.
    """
    call_id = str(fields.get("CALL_ID") or "").strip()
    if not call_id:
        return None
    raw_code = fields.get("CALL_FAILED_CODE")
    code = None if raw_code is None or str(raw_code).strip() == "" else str(raw_code).strip()
    try:
        duration_s = min(max(int(float(str(fields.get("CALL_DURATION") or 0))), 0), MAX_CALL_DURATION_S)
    except (ValueError, OverflowError):  # not a number, NaN, infinity
        duration_s = 0
    reason = fields.get("CALL_FAILED_REASON")
    started = fields.get("CALL_START_DATE")
    # a row without a code still ended (a statistics row is written when the call ends): not "unknown"
    kind = classify_call(code if code is not None else "OTHER", duration_s)
    return CallEnd(
        call_id=call_id,
        kind=kind,
        code=code,
        reason=str(reason)[:300] if reason else None,
        duration_s=duration_s,
        started_at=str(started) if started else None,
        source=source,
    )
