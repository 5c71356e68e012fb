"""Finding a job by what a caller names it with: a job id (global) or an idempotency key (per portal).

``callq status|cancel|dead show|dead replay``, HTTP ``GET``/``DELETE /v1/callbacks/{id}`` and the
Python API's ``Producer.status``/``cancel`` all go through :func:`find_record`, so none of them can
take a key on one portal for the same key on another.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from producers.results import AmbiguousKeyError
from schemas.store.ledger import Ledger
from schemas.store.records import JobRecord


async def find_record(
    ledger: Ledger,
    ident: str,
    *,
    portals: Sequence[str],
    portal: str | None = None,
    scope: Collection[str] | None = None,
) -> JobRecord | None:
    """The record ``ident`` names, among the jobs the caller may see.

    Args:
        ledger: the job records.
        ident: a job id, or an idempotency key.
        portals: the configured portals (where keys are looked up when ``portal`` is None).
        portal: look only on this portal: a job id of a job elsewhere is not found.
        scope: the portals the caller may see (None: every one); a job elsewhere is not found, the
            same answer as for a job that does not exist.

    Returns:
        The record, or None.

    Raises:
        AmbiguousKeyError: ``ident`` is no visible job's id, and an idempotency key on several of the
            portals looked at; the caller must name one (never the first match).
    """
    record = await ledger.read(ident)
    if record is not None and in_view(record.job.portal, portal=portal, scope=scope):
        return record
    if portal is not None:
        looked_at = [portal] if scope is None or portal in scope else []
    else:
        looked_at = [name for name in portals if scope is None or name in scope]
    holders = await ledger.key_holders(ident, portals=looked_at)
    if len(holders) > 1:
        raise AmbiguousKeyError(sorted(holders))
    return await ledger.read(next(iter(holders.values()))) if holders else None


def in_view(job_portal: str, *, portal: str | None, scope: Collection[str] | None) -> bool:
    """Whether a job on ``job_portal`` is looked at: on the asked portal, and one the caller may see."""
    return (portal is None or job_portal == portal) and (scope is None or job_portal in scope)
