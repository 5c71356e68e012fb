"""Why an attempt's end was not recorded: the reason label of ``callq_results_dropped_total``.

A worker that ends its attempt (a final outcome, or the job put back to wait) writes it only while
the record still holds that attempt. When the store's script answers otherwise, the result is
dropped; :func:`dropped_reason` names why, from the script's verdict and the state it found.
"""

from __future__ import annotations

from schemas.states import FINAL_STATUSES

DROPPED_REASONS = ("missing", "final", "superseded", "other")
"""Every reason label: a bounded set, whatever verdicts the scripts grow."""


def dropped_reason(verdict: str, state: str | None) -> str:
    """The reason a result was dropped.

    Args:
        verdict: what ``finalize.lua`` or ``reschedule.lua`` answered (``missing``, ``final``,
            ``superseded``, ``elsewhere``, ``busy``, ``refused``...).
        state: the job's state the script found, if it said.

    Returns:
        ``missing`` (no record: Redis lost it, or it expired), ``final`` (ended meanwhile, by the
        reconciler, a cancel or another worker), ``superseded`` (another attempt started since),
        or ``other`` (a state the attempt did not expect).
    """
    if verdict in ("missing", "superseded", "final"):
        return verdict
    if state in FINAL_STATUSES:
        return "final"
    return "other"
