"""Reading `[portals.NAME.calls]` and a line's redial keys (an extension: following each call to its end).

```toml
[portals.acme.calls]
follow = true                      # find out how each accepted callback's call ended
first_poll = 20                    # seconds before the first voximplant.statistic.get
max_poll = 300                     # longest wait between two of them
horizon = 3600                     # no end after this long: result "unknown" (never redialled)
event_token = "…"                  # OnVoximplantCallEnd's application_token (or CALLQ_PORTAL_ACME_EVENT_TOKEN)
redial_on = ["busy", "no_answer", "unavailable"]
redial_delays = [300, 900]         # before redial 1, 2, …; the last repeats
max_redials = 2                    # 0: never redial

[portals.acme.lines.reg1332]
max_redials = 0                    # a line may replace redial_on, redial_delays, max_redials
```
"""

from __future__ import annotations

from dataclasses import replace

from schemas.config.settings import CallsConfig, LineConfig
from schemas.config.toml import _show, _Table
from schemas.policy.call_result import CallKind
from schemas.policy.followup import FollowTiming
from schemas.policy.redial import NEVER_REDIALLED, RedialPolicy

CALLS_KEYS = frozenset(
    {
        "follow",
        "first_poll",
        "max_poll",
        "horizon",
        "event_token",
        "redial_on",
        "redial_delays",
        "max_redials",
    }
)
REDIAL_KEYS = frozenset({"redial_on", "redial_delays", "max_redials"})
REDIALLABLE = sorted(set(CallKind) - NEVER_REDIALLED - {CallKind.UNKNOWN})


def read_calls(table: _Table | None, *, env_token: str | None) -> CallsConfig:
    """The portal's `[calls]` table (defaults when absent); `env_token` from the environment wins."""
    base = CallsConfig()
    if table is None:
        return CallsConfig(event_token=env_token)
    table.check_keys(CALLS_KEYS)
    timing = FollowTiming(
        first_poll_s=table.number("first_poll", base.timing.first_poll_s, positive=True),
        max_poll_s=table.number("max_poll", base.timing.max_poll_s, positive=True),
        horizon_s=table.number("horizon", base.timing.horizon_s, positive=True),
    )
    return CallsConfig(
        follow=table.boolean("follow", base.follow),
        timing=timing,
        event_token=env_token or table.string("event_token", secret=True),
        redial=read_redial(table, base.redial) or base.redial,
    )


def read_redial(table: _Table, base: RedialPolicy) -> RedialPolicy | None:
    """A redial policy from `redial_on`, `redial_delays`, `max_redials` (unset keys from `base`);
    None when the table sets none of them."""
    if not REDIAL_KEYS & set(table.data):
        return None
    kinds = base.redial_on
    if "redial_on" in table.data:
        value = table.data["redial_on"]
        allowed = ", ".join(REDIALLABLE)
        if not isinstance(value, list) or any(item not in REDIALLABLE for item in value):
            table.fail("redial_on", f"must be a list of {allowed}, got {_show(value)}")
        kinds = frozenset(CallKind(item) for item in value)
    delays = base.delays_s
    if "redial_delays" in table.data:
        value = table.data["redial_delays"]
        if (
            not isinstance(value, list)
            or not value
            or any(isinstance(item, bool) or not isinstance(item, int | float) or item < 0 for item in value)
        ):
            table.fail("redial_delays", f"must be a non-empty list of seconds >= 0, got {_show(value)}")
        delays = tuple(float(item) for item in value)
    return RedialPolicy(
        redial_on=kinds,
        delays_s=delays,
        max_redials=table.integer("max_redials", base.max_redials, at_least=0),
    )


def line_redials(portal: _Table, lines: dict[str, LineConfig], base: RedialPolicy) -> dict[str, LineConfig]:
    """The lines with their own redial policy (keys a line leaves out come from the portal's)."""
    tables = portal.table("lines")
    if tables is None:
        return lines
    result = {}
    for line_id, line in lines.items():
        table = tables.table(line_id)
        redial = read_redial(table, base) if table is not None else None
        result[line_id] = replace(line, redial=redial)
    return result
