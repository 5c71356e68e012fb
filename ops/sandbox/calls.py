"""The sandbox plays each accepted callback's call out: it ends after a simulated duration with a
result drawn from a configurable mix, its statistics row appears only then (``voximplant.statistic.get``),
and ``OnVoximplantCallEnd`` is pushed to the handlers bound for it (``event.bind`` under OAuth, or an
outgoing webhook an administrator made, the control API's ``POST /_sandbox/events``).

Results and their ``CALL_FAILED_CODE``: ``connected`` 200 (with talk time), ``busy`` 486,
``no_answer`` 304, ``declined`` 603, ``invalid_number`` 404, ``unavailable`` 480.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

CODES: Mapping[str, tuple[str, str]] = {
    "connected": ("200", "Success"),
    "busy": ("486", "Busy here"),
    "no_answer": ("304", "Missed call"),
    "declined": ("603", "Declined"),
    "invalid_number": ("404", "Invalid number"),
    "unavailable": ("480", "Temporarily unavailable"),
}
CALL_END_EVENT = "ONVOXIMPLANTCALLEND"


@dataclass
class PlayedCall:
    """One call placed by ``callback.start``, and how it ends."""

    portal: str
    call_id: str
    line: str
    number: str
    placed_at: float
    ends_at: float
    result: str
    talk_s: int
    pushed: bool = False

    def row(self) -> dict[str, Any]:
        """Its ``voximplant.statistic.get`` row (and its ``OnVoximplantCallEnd`` data)."""
        code, reason = CODES[self.result]
        return {
            "CALL_ID": self.call_id,
            "CALL_TYPE": "4",
            "PORTAL_NUMBER": self.line,
            "PHONE_NUMBER": self.number,
            "CALL_DURATION": str(self.talk_s),
            "CALL_START_DATE": datetime.fromtimestamp(self.placed_at, tz=UTC).isoformat(),
            "CALL_FAILED_CODE": code,
            "CALL_FAILED_REASON": reason,
        }


@dataclass
class Handler:
    """An event handler bound on a portal."""

    event: str
    url: str
    application_token: str


@dataclass
class CallPlayer:
    """The calls of every portal, their mix of results, and the bound handlers."""

    seed: int | None = None
    mix: dict[str, dict[str, float]] = field(default_factory=dict)
    duration_s: dict[str, float] = field(default_factory=dict)
    calls: list[PlayedCall] = field(default_factory=list)
    handlers: dict[str, list[Handler]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def set_mix(self, portal: str, mix: Mapping[str, float], *, duration_s: float | None = None) -> None:
        """Results drawn for the portal's next calls, by weight (``{"connected": 3, "busy": 1}``).

        Raises:
            ValueError: an unknown result or a weight below 0 (or all 0).
        """
        unknown = sorted(set(mix) - set(CODES))
        if unknown or any(float(w) < 0 for w in mix.values()) or sum(float(w) for w in mix.values()) <= 0:
            raise ValueError(f"mix needs weights >= 0 of {', '.join(CODES)} (got {dict(mix)!r})")
        self.mix[portal] = {str(k): float(v) for k, v in mix.items()}
        if duration_s is not None:
            if duration_s < 0:
                raise ValueError("duration_s must be >= 0")
            self.duration_s[portal] = duration_s

    def place(self, portal: str, call_id: str, *, line: str, number: str, now: float) -> PlayedCall:
        """A call ``callback.start`` placed: draw how it ends."""
        mix = self.mix.get(portal, {"connected": 1.0})
        result = self._random.choices(list(mix), weights=list(mix.values()))[0]
        duration = self.duration_s.get(portal, 2.0)
        call = PlayedCall(
            portal,
            call_id,
            line,
            number,
            now,
            now + duration,
            result,
            max(int(duration), 1) if result == "connected" else 0,
        )
        self.calls.append(call)
        return call

    def rows(self, portal: str, filters: Mapping[str, Any], *, now: float) -> list[dict[str, Any]]:
        """``voximplant.statistic.get``: rows of the portal's calls that ended, matching ``FILTER``'s
        exact fields (Bitrix24 drops unknown keys and operators; the sandbox matches plain keys only)."""
        rows = []
        wanted_id = str(filters["CALL_ID"]) if "CALL_ID" in filters else None
        for call in self.calls:
            if call.portal != portal or call.ends_at > now or wanted_id not in (None, call.call_id):
                continue
            row = call.row()
            if all(str(row.get(key)) == str(value) for key, value in filters.items() if key in row):
                rows.append(row)
        return rows

    def bind(self, portal: str, handler: Handler) -> None:
        """Bind ``handler`` (replacing one with the same event and URL)."""
        bound = [h for h in self.handlers.get(portal, []) if (h.event, h.url) != (handler.event, handler.url)]
        self.handlers[portal] = [*bound, handler]

    def due_pushes(self, *, now: float) -> list[tuple[PlayedCall, Handler]]:
        """Calls that ended and were not pushed yet, with each handler bound for their end."""
        due = []
        for call in self.calls:
            if call.pushed or call.ends_at > now:
                continue
            call.pushed = True
            due += [(call, h) for h in self.handlers.get(call.portal, []) if h.event == CALL_END_EVENT]
        return due

    def results(self, portal: str | None = None) -> dict[str, str]:
        """CALL_ID -> result of every call placed (on ``portal``), ended or not."""
        return {c.call_id: c.result for c in self.calls if portal is None or c.portal == portal}

    def clear(self) -> None:
        """Forget calls (the mix and the handlers stay)."""
        self.calls.clear()


def app_token(portal: Any) -> str:
    """The ``application_token`` a portal's events carry: one per portal, derived from its name."""
    return f"sandbox-app-token-{portal.name}"


def event_form(call: PlayedCall, handler: Handler, *, domain: str) -> dict[str, str]:
    """The form Bitrix24 POSTs to a handler: ``event``, ``data[...]``, ``ts``, ``auth[...]``."""
    form = {"event": CALL_END_EVENT, "ts": str(int(call.ends_at))}
    form |= {f"data[{key}]": value for key, value in call.row().items()}
    form |= {"auth[domain]": domain, "auth[application_token]": handler.application_token}
    return form
