"""A portal's last hour, minute by minute, for the dashboard's plots: outcomes by status and the
request latency of attempts, in one small hash per portal and minute (``{p}:stats:{portal}:{minute}``).

Written in the same step as what they count: ``finalize.lua`` adds the outcome (and the latency of
the attempt that ended the job), :meth:`schemas.store.ledger.Ledger.finish_attempt` the latency of an
attempt that did not. Counters, never a scan of the outcome stream: a page reads 60 small hashes.
"""

from __future__ import annotations

from bisect import bisect_left

MINUTE_MS = 60_000
MINUTE_TTL_MS = 2 * 3600 * 1000
"""Two hours: the plots show the last hour; the margin keeps a minute whole while it is shown."""

LATENCY_BOUNDS_MS = (100, 250, 500, 1000, 2500, 5000, 10000)
"""Upper bounds of the latency buckets (the last bucket, ``lat:7``, has none)."""

LATENCY_SUM = "lat_sum"
LATENCY_COUNT = "lat_n"


def minute_of(ms: int) -> int:
    """The minute (unix ms // 60000) a moment falls in."""
    return ms // MINUTE_MS


def latency_field(duration_ms: float) -> str:
    """The hash field of the bucket ``duration_ms`` falls in."""
    return f"lat:{bisect_left(LATENCY_BOUNDS_MS, duration_ms)}"


def latency_quantile(buckets: list[int], q: float) -> float | None:
    """The ``q`` quantile read off bucket counts (the upper bound of the bucket it falls in; the
    last bucket reads as twice the largest bound), or None with no sample."""
    total = sum(buckets)
    if total == 0:
        return None
    rank, seen = q * total, 0
    for index, count in enumerate(buckets):
        seen += count
        if seen >= rank and count:
            return float(
                LATENCY_BOUNDS_MS[index] if index < len(LATENCY_BOUNDS_MS) else 2 * LATENCY_BOUNDS_MS[-1]
            )
    return float(2 * LATENCY_BOUNDS_MS[-1])


CALL_PREFIX = "call:"
"""Fields ``call:<kind>`` count the final call results of the minute (``call_end.lua``)."""


def call_stats_field(kind: str) -> str:
    """The hash field a final call result of ``kind`` is counted in."""
    return f"{CALL_PREFIX}{kind}"


def reached_ratio(counts: dict[str, int]) -> float | None:
    """Connected calls over final call results with a known end (``unknown`` left out), or None."""
    known = {k: v for k, v in counts.items() if k.startswith(CALL_PREFIX) and k != CALL_PREFIX + "unknown"}
    total = sum(known.values())
    return known.get(CALL_PREFIX + "connected", 0) / total if total else None
