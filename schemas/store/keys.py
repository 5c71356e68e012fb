"""Every Redis key callq writes, in one place (contract §1).

All keys start with the deployment's prefix ``{p}`` so that two deployments, or two test runs,
share one Redis without touching each other's keys. arq's own names (its queue, renamed under the
prefix, and its job keys, whose ids embed the prefix) are :mod:`schemas.jobqueue.names`'; ``jobs``
gives them for the same prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from schemas.jobqueue.names import QueueNames

INTAKE_GROUP = "callq"
"""Consumer group on ``{p}:intake``; every worker process is one consumer in it."""


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix.

    Args:
        prefix: the deployment's key prefix (``CALLQ_KEY_PREFIX``).
    """

    prefix: str

    @property
    def intake(self) -> str:
        """Stream any producer XADDs ``job`` entries into (contract §4)."""
        return f"{self.prefix}:intake"

    @property
    def outcomes(self) -> str:
        """Stream of final outcomes (contract §5). Trimmed approximately to ``outcomes_maxlen``."""
        return f"{self.prefix}:outcomes"

    @cached_property
    def jobs(self) -> QueueNames:
        """arq's names for this deployment's jobs (the queue, each job's keys)."""
        return QueueNames(self.prefix)

    @property
    def queue(self) -> str:
        """arq's queue sorted set, renamed under the prefix (the only arq name that can be)."""
        return self.jobs.queue

    @property
    def health(self) -> str:
        """arq's health-check key for this queue."""
        return self.jobs.health

    @property
    def running(self) -> str:
        """Sorted set of jobs whose attempt is in flight, scored by the attempt's lease expiry (Redis
        time, ms). The worker running an attempt extends its lease every few seconds; a lease that
        lapsed means nobody works on the attempt any more, and the reconciler ends it. Members leave
        when their job leaves ``running``."""
        return f"{self.prefix}:running"

    def scheduled(self, portal: str) -> str:
        """Sorted set of the portal's jobs waiting to run (``scheduled`` or ``retrying``), scored by
        ``run_at`` (ms): the dashboard's list of scheduled callbacks and its counts, read a page at a
        time instead of scanning every record. Kept by the scripts that change a job's state or
        ``run_at`` (admit, start, reschedule, resume, finalize), in the same step. No TTL: a member
        leaves when its job leaves those states."""
        return f"{self.scheduled_prefix}{portal}"

    @property
    def scheduled_prefix(self) -> str:
        """What every :meth:`scheduled` key starts with (scripts that find a job's portal in its record)."""
        return f"{self.prefix}:sched:"

    def dead_on(self, portal: str) -> str:
        """Sorted set of the portal's dead job ids by time of death: :attr:`dead`, per portal, for the
        dashboard's counts and lists. Kept with :attr:`dead` by finalize, replay and purge."""
        return f"{self.dead_on_prefix}{portal}"

    @property
    def dead_on_prefix(self) -> str:
        """What every :meth:`dead_on` key starts with."""
        return f"{self.prefix}:dead:"

    def minute_stats(self, portal: str, minute: int) -> str:
        """Hash of one minute of a portal (``minute`` = unix ms // 60000): outcomes by status and
        request latency buckets (:mod:`schemas.store.stats`), for the dashboard's last-hour plots.
        Lives two hours (:data:`schemas.store.stats.MINUTE_TTL_MS`): the plots show one."""
        return f"{self.prefix}:stats:{portal}:{minute}"

    def dashboard_session(self, session_id: str) -> str:
        """String (JSON: token name, role, CSRF token) of one dashboard login, by an opaque random id
        held in the browser's cookie. Its TTL is the session's idle time, renewed on use; logout
        deletes it. The token itself is never stored (only its name)."""
        return f"{self.prefix}:session:{session_id}"

    def dashboard_upload(self, session_id: str, upload_id: str) -> str:
        """String: a file uploaded for bulk import, kept between its preview and the operator's
        confirmation. Lives 15 minutes: a preview older than that is uploaded again."""
        return f"{self.prefix}:upload:{session_id}:{upload_id}"

    def worker(self, worker_id: str) -> str:
        """String with a short TTL refreshed by each live worker process: who is alive."""
        return f"{self.prefix}:worker:{worker_id}"

    def held(self, portal: str) -> str:
        """Set of jobs put back to wait out a portal's halt or rate pause, so that ``callq resume``
        can wake them at once. It expires a little after the halt would have ended by itself."""
        return f"{self.prefix}:held:{portal}"

    @property
    def write_probe(self) -> str:
        """String ``callq serve``'s readiness check writes to learn whether Redis takes writes (a full
        Redis refuses them). Lives 10 s: it only has to exist for the probe."""
        return f"{self.prefix}:write-probe"

    @property
    def dead(self) -> str:
        """Sorted set of dead job ids scored by time of death: the dead-letter index."""
        return f"{self.prefix}:dead"

    @property
    def secret(self) -> str:
        """String: the deployment's secret, 32 random bytes in hex (:mod:`schemas.store.secret`).

        Created once, atomically, by the first worker or ``callq serve`` to need it; no TTL. It keys
        the job ids of intake entries (unguessable, yet the same on redelivery) and the digests of
        credentials in the configuration fingerprint. Lost, a new one is made: see docs/deployment.md.
        """
        return f"{self.prefix}:secret"

    @property
    def config_live(self) -> str:
        """Sorted set of the live processes (workers, ``callq serve``) and their configuration's
        fingerprint, scored by when each is presumed gone (:mod:`schemas.config.registry`). Each
        refreshes its score every 10 s; 30 s without one and it no longer counts. The set's TTL is
        as long, so a deployment that stopped leaves nothing behind."""
        return f"{self.prefix}:config:live"

    def config_parts(self, digest: str) -> str:
        """String: the parts of fingerprint ``digest`` (JSON, dotted key -> digest), so that a
        process can name what differs; same TTL as a live entry, refreshed by every holder."""
        return f"{self.prefix}:config:{digest}"

    def job(self, job_id: str) -> str:
        """Hash holding one job's record: the job, its state and, once final, its outcome.

        No TTL while the job is pending (a pending job must never vanish); once final it expires
        after ``outcome_retention`` so Redis does not grow without bound.
        """
        return f"{self.prefix}:job:{job_id}"

    def idempotency(self, portal: str, key: str) -> str:
        """String: idempotency key -> job id. Same lifetime as the job record it points to."""
        return f"{self.idempotency_prefix}{portal}:{key}"

    @property
    def idempotency_prefix(self) -> str:
        """What every idempotency key starts with (``{p}:idem:``; then ``{portal}:{key}``)."""
        return f"{self.prefix}:idem:"

    def claim(self, portal: str, line: str, e164: str) -> str:
        """String: the job that holds portal + line + number.

        While the job is pending it has the deadline's lifetime plus a margin (so a claim can
        never outlive a job that Redis lost); after success it lives ``dedupe_window`` seconds;
        cancelled, expired and dead jobs delete it.
        """
        return f"{self.prefix}:claim:{portal}:{line}:{e164}"

    def rate_bucket(self, portal: str) -> str:
        """String: the portal's leaky bucket as a GCRA arrival time (ms). Expires once the bucket
        would be empty, so an idle portal leaves nothing behind."""
        return f"{self.prefix}:rate:{portal}"

    def plan_bucket(self, portal: str) -> str:
        """String: the bucket admission reserves from to spread the first runs of jobs due now
        (the real bucket is taken by the worker at run time, so a plan gone stale harms nothing)."""
        return f"{self.prefix}:plan:{portal}"

    def portal_pause(self, portal: str) -> str:
        """String whose TTL is how long the portal's callbacks are paused: ``1`` after a
        QUERY_LIMIT_EXCEEDED, ``operating`` while callback.start's execution-time budget frees up."""
        return f"{self.prefix}:pause:{portal}"

    def portal_halt(self, portal: str) -> str:
        """String (JSON: code, description, since) while the portal is halted because Bitrix24
        refused it as a whole (credentials, scope, permission, a block); its TTL is the halt. No
        request starts meanwhile. Set only if absent: one halt, however many refusals come back."""
        return f"{self.prefix}:halt:{portal}"

    def portal_moved(self, portal: str) -> str:
        """String (JSON: from, to, since): the portal answered from one origin with a redirect to
        another (:mod:`schemas.policy.moves`); every worker sends there. No TTL: it applies only
        while the configuration still names the old origin, and a request to the old one would be
        redirected again anyway. Origins only, never a path (a webhook code)."""
        return f"{self.prefix}:moved:{portal}"

    def operating(self, portal: str) -> str:
        """Hash: method -> JSON of its last execution-time reading (``time.operating``,
        ``operating_reset_at``, ``finish``), the newest of concurrent answers. Expires 11 minutes
        after the last answer: older than Bitrix24's 10-minute window, a reading says nothing."""
        return f"{self.prefix}:operating:{portal}"

    def voices(self, portal: str) -> str:
        """String (JSON: voices, fetched_at): the voices ``voximplant.tts.voices.get`` offered, for
        admission to check a job's ``voice``. Refreshed hourly by one worker (and by ``callq check``
        and ``callq voices``); expires after a day, after which no voice is refused."""
        return f"{self.prefix}:voices:{portal}"

    def voices_refresh(self, portal: str) -> str:
        """String: which worker refreshes the portal's voices this hour. PX one hour, so only one
        worker asks the portal per hour, and another takes over if it stops."""
        return f"{self.prefix}:voices-refresh:{portal}"

    def portal_strikes(self, portal: str) -> str:
        """Counter of rate refusals in a row, for the doubling pause; expires after quiet time."""
        return f"{self.prefix}:strikes:{portal}"

    def line_pacing(self, portal: str, line: str) -> str:
        """String: the line's next free start (``min_interval``), GCRA style like the bucket."""
        return f"{self.prefix}:pace:{portal}:{line}"

    def call_index(self, portal: str, call_id: str) -> str:
        """String: a CALL_ID Bitrix24 returned -> the job that placed it, so that a pushed
        ``OnVoximplantCallEnd`` finds its job. Lives the follow-up horizon plus a day (an event may come
        late; after that the call's result is ``unknown`` anyway); deleted when the call's end is recorded."""
        return f"{self.prefix}:callid:{portal}:{call_id}"

    @property
    def calls(self) -> str:
        """Sorted set of jobs whose call's end is awaited, scored by when ``voximplant.statistic.get``
        is next asked (Redis ms). A worker that takes one moves its score ahead (a claim for as long as
        one request takes), so one worker asks at a time. Members leave when the call's end is recorded."""
        return f"{self.prefix}:calls"

    @property
    def dialling(self) -> str:
        """Sorted set of jobs whose redial's request is in flight, scored by its lease's expiry (Redis
        ms). A lease that lapsed means the worker died after marking the redial: its result is
        ``unknown`` (never dialled again). Members leave when the redial's result is recorded."""
        return f"{self.prefix}:dialling"
