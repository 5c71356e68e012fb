"""arq's key names and job ids for a callq deployment.

arq lets only its queue be renamed (it is named under the prefix, ``{p}:queue``); its ``arq:job:``,
``arq:in-progress:``, ``arq:retry:`` and ``arq:result:`` prefixes are global, so the arq job id of a
callq job embeds the prefix (``{p}:{job id}``, contract §1). Producers write the queue entry
themselves, from the store's admission script, so they must agree with the worker byte for byte:
both take the names from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix

FUNCTION = "callq.run_callback"
"""The one arq function callq enqueues; its only argument is the callq job id."""


@dataclass(frozen=True)
class QueueNames:
    """arq's names for the jobs of one deployment.

    Args:
        prefix: the deployment's key prefix (``CALLQ_KEY_PREFIX``).
    """

    prefix: str

    @property
    def queue(self) -> str:
        """arq's queue, a sorted set of arq job ids scored by when they are due (unix ms)."""
        return f"{self.prefix}:queue"

    @property
    def health(self) -> str:
        """The health-check key every worker of this queue refreshes (readiness checks read it)."""
        return f"{self.prefix}:queue:health-check"

    def member(self, job_id: str) -> str:
        """The arq job id of a callq job: its member in the queue."""
        return f"{self.prefix}:{job_id}"

    def job_id(self, member: str) -> str:
        """The callq job id of a queue member (inverse of :meth:`member`)."""
        head = f"{self.prefix}:"
        if not member.startswith(head):
            raise ValueError(f"arq job id {member!r} is not under prefix {self.prefix!r}")
        return member[len(head) :]

    def job(self, job_id: str) -> str:
        """arq's job key. callq no longer writes one (the worker runs its jobs from the queue entry:
        :mod:`schemas.jobqueue.lane`); a job admitted by 0.2 has one, deleted with its queue entry."""
        return job_key_prefix + self.member(job_id)

    def in_progress(self, job_id: str) -> str:
        """arq's in-progress marker: the worker that claimed the job holds it, as a lease."""
        return in_progress_key_prefix + self.member(job_id)

    def retry(self, job_id: str) -> str:
        """arq's try counter of a job."""
        return retry_key_prefix + self.member(job_id)
