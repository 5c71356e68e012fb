"""Taking due jobs from arq's queue: arq's own ``Worker``, with the claim done in batches.

arq claims each due job on its own, in four sequential round trips (WATCH the job's in-progress
key, EXISTS, ZSCORE, MULTI/SET/EXEC), and every worker process walks the same list of due ids,
so a second process spends three round trips on each job the first one already took. That, not
CPU, bounded a worker at 400-550 jobs/s with its CPU half idle, and kept two processes from doing
better than one (issue 7's throughput, lateness and scale benchmarks). Here one Lua script claims up to as many jobs as there
are free slots, skipping those taken elsewhere: one round trip per batch, whatever the contention.

The claim means exactly what arq's does (arq's in-progress key, set only for a job whose score is
due and that no one holds), and the job then runs through arq's ``run_job``. Two more departures:

- **The in-progress key is a lease.** arq sets it for the job timeout + 10 s and never renews it, so
  a job running longer is taken over by another worker. A callq job is never cut short (its result
  must be written however long Redis takes, :func:`worker.jobs.settle.durably`), so every ``lease_s / 5``
  this worker renews the keys of the jobs it still runs (a ``PEXPIRE`` of each key whose value is
  still its claim token; a full Redis still takes it; a key that lapsed while Redis was away is
  taken again unless another worker took it). A job running here is never claimed here again. A
  worker that dies stops renewing: its jobs are taken over ``lease_s`` later.
- **Redis refusing writes** (full, ``MISCONF``, ``READONLY``, ``NOREPLICAS``:
  :func:`schemas.store.errors.write_refusal`). While the :class:`~schemas.store.writegate.WriteGate` says
  Redis refuses writes, no job is claimed and the heartbeat is tried only when a try is due (it is the
  probe: the first one Redis takes clears the gate); arq's bookkeeping refused before a job ran releases
  the job (or, when Redis refuses the delete too, leaves its claim to lapse with its lease); arq's
  ``finish_job`` is sent until Redis takes it. Nothing crashes the worker: arq's ``_poll_iteration``
  re-raises whatever a job's task raised (``t.result()``), so :meth:`BatchClaimWorker.run_job` lets
  no refusal out.

- **Wake-ups** (``wake_ups``, on for callq): between two of arq's polls the worker does not sleep
  blindly. One script call (``DUE``) gives the due ids and the earliest score still ahead; the worker
  claims what is due, then waits until that score (at least ``WAKE_MIN_S`` apart) or until the
  next poll, whichever is first, and looks again. A job scheduled ahead starts within a few
  milliseconds of its time rather than within a poll delay, and an idle queue costs what it did:
  one read per poll delay.

It relies on arq internals: ``_poll_iteration`` calling ``start_jobs`` with the due ids, ``sem``,
``job_counter``, ``_release_sem_dec_counter_on_complete``, ``tasks``, ``allow_pick_jobs``,
``run_job`` and the ``finish_job`` it calls (shielded), ``record_health`` and its
``_last_health_check``, and a few settings (``poll_delay_s``, ``health_check_interval``,
``allow_abort_jobs``, ``cron_jobs``). They are pinned by the ``arq`` version range in
pyproject.toml, each exercised by ``tests/schemas/jobqueue/test_arq_internals.py``, and arq's own test suite
runs against this worker (``make test-arq``, ``tests/arq_suite/``).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import logging
import secrets
from typing import Any

from arq.constants import in_progress_key_prefix, job_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError, ResponseError

from schemas.jobqueue.lane import RELEASING, DirectLane, Ended
from schemas.store.records import decode_text
from schemas.store.writegate import WriteGate, refusal_or_raise

logger = logging.getLogger("callq.dispatch")

CLAIM = (
    RELEASING
    + """
-- KEYS: arq queue
-- ARGV: now_ms, in-progress TTL ms, in-progress key prefix, at most this many, claim token,
--       arq job key prefix, n, n arguments of releases (the direct lane's, sent first), job ids...
-- Claims due jobs no worker holds, in order, up to the limit. Returns the number of ids looked at
-- followed by (id, score) pairs. In-progress keys are named here, not passed (no Redis Cluster).
-- The in-progress value is this call's token (arq only tests the key's existence): redis-py
-- re-sends a command whose reply a dropped connection lost, and the repeat must find the jobs
-- the first run claimed as its own, or they would sit claimed by no one until the TTL ends.
local now, limit, token = tonumber(ARGV[1]), tonumber(ARGV[4]), ARGV[5]
local first = 8 + tonumber(ARGV[7])
release(KEYS[1], ARGV[3], ARGV[6], 8, first - 1)
local out, looked = {0}, 0
for i = first, #ARGV do
  if (#out - 1) / 2 >= limit then break end
  looked = looked + 1
  local id = ARGV[i]
  local score = redis.call('ZSCORE', KEYS[1], id)
  if score and tonumber(score) <= now then
    local key = ARGV[3] .. id
    if redis.call('SET', key, token, 'NX', 'PX', ARGV[2]) or redis.call('GET', key) == token then
      out[#out + 1] = id
      out[#out + 1] = score
    end
  end
end
out[1] = looked
return out
"""
)

RENEW = """
-- KEYS: none (in-progress keys are named here, no Redis Cluster); ARGV: TTL ms, (key, token) pairs...
-- extend the in-progress keys this worker still holds; one that lapsed while Redis was away and
-- nobody took meanwhile is taken again (the job still runs here); one another worker took is left.
local renewed = 0
for i = 2, #ARGV, 2 do
  local holder = redis.call('GET', ARGV[i])
  if holder == ARGV[i + 1] then
    renewed = renewed + redis.call('PEXPIRE', ARGV[i], ARGV[1])
  elseif not holder then
    redis.call('SET', ARGV[i], ARGV[i + 1], 'PX', ARGV[1])
    renewed = renewed + 1
  end
end
return renewed
"""

DUE = """
-- KEYS: arq queue; ARGV: now_ms, at most this many ids
-- Returns {earliest score after now ('' if none), due ids...}.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local ahead = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
table.insert(ids, 1, ahead[2] or '')
return ids
"""

WAKE_MIN_S = 0.01
"""Wake-ups between two polls come at least this far apart: jobs due within it are claimed together."""

DEFAULT_LEASE_S = 20.0
"""How long arq's in-progress key of a claimed job lives without renewal. The worker renews the keys
of the jobs it runs, so however long a job takes no other worker takes it over; a worker that died
has its jobs taken over about this long later (arq: job timeout + 10 s, fixed)."""

LOOKAHEAD = 4
"""Ids sent per claim: this many times the free slots, so that ids other workers took are skipped
in the same round trip."""


def _signature_with_options(base: inspect.Signature) -> inspect.Signature:
    """arq's ``Worker`` signature plus this worker's two options. arq's ``create_worker`` (its CLI and
    ``run_worker``) passes a settings class only the settings the worker's signature names."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    options = [
        inspect.Parameter("gate", keyword, default=None, annotation="WriteGate | None"),
        inspect.Parameter("lease_s", keyword, default=DEFAULT_LEASE_S, annotation="float"),
        inspect.Parameter("wake_ups", keyword, default=False, annotation="bool"),
        inspect.Parameter("direct", keyword, default=None, annotation="DirectLane | None"),
    ]
    return base.replace(parameters=[*base.parameters.values(), *options])


class BatchClaimWorker(Worker):
    """arq's ``Worker`` whose ``start_jobs`` claims due jobs in batches (one round trip each), whose
    in-progress keys are leases renewed while their job runs, and which rides out a full Redis.

    Args:
        args: arq ``Worker`` arguments.
        gate: whether Redis takes writes, shared with the job function (a fresh one by default).
        lease_s: the in-progress keys' lifetime without renewal (renewed every fifth of it).
        kwargs: arq ``Worker`` keyword arguments.
    """

    __signature__ = _signature_with_options(inspect.signature(Worker))
    _claim: AsyncScript | None = None
    _renew: AsyncScript | None = None
    _due: AsyncScript | None = None
    _slot_freed: asyncio.Event | None = None
    _renewing: asyncio.Task[None] | None = None
    _claimer = ""
    _claims = itertools.count()

    def __init__(
        self,
        *args: Any,
        gate: WriteGate | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        wake_ups: bool = False,
        direct: DirectLane | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.gate = gate or WriteGate()
        self.lease_ms = int(lease_s * 1000)
        self.wake_ups = wake_ups
        self.direct = direct
        self._renewal_done = asyncio.Event()
        self._renewal_done.set()
        if direct is not None:
            direct.bind(forget=self._forget_claim, renewal_done=self._renewal_done.wait)
        self._tokens: dict[str, str] = {}

    async def start_jobs(self, job_ids: list[bytes]) -> None:
        """Claim and start the due jobs among ``job_ids`` (:meth:`claim_due`); with wake-ups, go on
        until the next poll is due, claiming each job as its time comes (:meth:`wake_and_claim`)."""
        until = self.loop.time() + self.poll_delay_s
        await self.claim_due(job_ids, until=until)
        if self.wake_ups and not (self.allow_abort_jobs or self.cron_jobs):
            await self.wake_and_claim(until=until)

    async def wake_and_claim(self, *, until: float) -> None:
        """Until ``until`` (the next poll): wait for the earliest job ahead, then claim what is due."""
        if self._due is None:
            self._due = self.pool.register_script(DUE)
        while self.allow_pick_jobs and self.gate.due():
            now_ms = timestamp_ms()
            reply = await self._due(keys=[self.queue_name], args=[now_ms, self.queue_read_limit])
            ahead, due = reply[0], reply[1:]
            if due:
                await self.claim_due(due, until=until)
            left_s = until - self.loop.time()
            if left_s <= 0:
                return
            wait_s = left_s
            if ahead not in (b"", ""):
                wait_s = min(left_s, max((float(ahead) - timestamp_ms()) / 1000, WAKE_MIN_S))
            await asyncio.sleep(wait_s)
            if wait_s >= left_s:
                return

    async def claim_due(self, job_ids: list[bytes], *, until: float) -> None:
        """Claim and start the due jobs among ``job_ids`` (arq's queue order), as slots free up.

        arq returns as soon as its slots are full and reads the queue again after the poll delay;
        claiming in batches fills the slots at once, so this waits for a slot to free up instead.
        After one poll delay it returns, but only with a slot free, so that arq reads the queue
        again at once (returning full would make arq skip the read and sleep a poll delay). Its
        heartbeat (the health-check key readiness checks read) thus runs at least every poll delay,
        or every half health-check interval while every slot stays busy; with aborts or cron jobs
        (work arq's loop does at every poll) it returns after one poll delay, full or not. The
        first claim is made whatever the poll delay (with 0, the deadline has passed already). It
        claims nothing more once arq stops picking jobs (a graceful shutdown).
        """
        if self._claim is None:
            self._claim = self.pool.register_script(CLAIM)
            self._renew = self.pool.register_script(RENEW)
            self._slot_freed = asyncio.Event()
            self._claimer = secrets.token_hex(8)
            self._claims = itertools.count(1)
            self._renewing = asyncio.create_task(self._keep_renewing())
        slot_freed = self._slot_freed
        assert slot_freed is not None
        if not self.gate.due():
            return  # Redis is full: claim nothing until the next try is due
        # a job that runs here is never claimed again, even if its in-progress key lapsed while Redis
        # was away (a stall, a restart): two tasks of one arq job would end it for arq, not for callq
        ids = [job_id.decode() for job_id in job_ids]
        ids = [job_id for job_id in ids if not self._runs_here(job_id)]
        at = 0
        claimed_once = False
        while at < len(ids) and self.allow_pick_jobs:
            free = self.max_jobs - self.job_counter
            if free <= 0:
                slot_freed.clear()
                try:
                    await asyncio.wait_for(slot_freed.wait(), timeout=self._slot_wait_s(until))
                except TimeoutError:
                    return
                continue
            if claimed_once and self.loop.time() >= until:
                return
            claimed_once = True
            window = ids[at : at + free * LOOKAHEAD]
            token = f"{self._claimer}:{next(self._claims)}"  # one per call; a retry repeats it
            releases = self.direct.take() if self.direct is not None else []
            args: list[str | int] = [
                timestamp_ms(),
                self.lease_ms,
                in_progress_key_prefix,
                free,
                token,
                job_key_prefix,
                len(releases),
                *releases,
                *window,
            ]
            try:
                if releases:
                    await self._renewal_done.wait()  # see DirectLane.bind
                reply = await self._claim(keys=[self.queue_name], args=args)
            except ResponseError as exc:
                # nothing claimed: the jobs stay due for any worker
                self._give_back(releases)
                self.gate.refused("claim", refusal_or_raise(exc))
                return
            except BaseException:
                self._give_back(releases)
                raise
            at += int(reply[0])
            if len(reply) > 1:
                self.gate.accepted()  # it wrote an in-progress key
            for raw_id, raw_score in zip(reply[1::2], reply[2::2], strict=True):
                job_id = decode_text(raw_id)
                self._tokens[job_id] = token
                await self._start(job_id, decode_text(raw_score))

    def _give_back(self, releases: list[str]) -> None:
        if self.direct is not None:
            self.direct.give_back(releases)

    def _slot_wait_s(self, until: float) -> float:
        """How long to wait for a slot before handing back to arq's loop: half the health-check
        interval (its heartbeat is due then), but only up to the hand-back deadline when that loop
        has work at every poll (aborts to pass on to running jobs, cron jobs to enqueue)."""
        if self.allow_abort_jobs or self.cron_jobs:
            return max(until - self.loop.time(), 0.0)
        return self.health_check_interval / 2

    def _runs_here(self, job_id: str) -> bool:
        """A task of this worker runs ``job_id`` now."""
        task = self.tasks.get(job_id)
        return task is not None and not task.done()

    async def _start(self, job_id: str, score: str) -> None:
        """What arq does with a job it claimed: a task running ``run_job`` (callq's jobs: the direct
        lane, :mod:`schemas.jobqueue.lane`), holding a slot."""
        await self.sem.acquire()  # arq's count of running jobs; a slot is free, so it does not wait
        self.job_counter += 1
        callq_job_id = self.direct.job_id(job_id) if self.direct is not None else None
        if callq_job_id is None:
            task = self.loop.create_task(self.run_job(job_id, int(float(score))))
        else:
            token = self._tokens.get(job_id, "")  # its claim's, taken now: the key it may release
            task = self.loop.create_task(self._run_direct(job_id, callq_job_id, score, token))
        task.add_done_callback(lambda _: self._release_sem_dec_counter_on_complete())
        task.add_done_callback(lambda _: self._on_job_done(job_id))  # after arq's: the slot is counted free
        self.tasks[job_id] = task

    async def _run_direct(self, job_id: str, callq_job_id: str, score: str, token: str) -> None:
        """A callq job on the direct lane, counted as arq counts its jobs."""
        assert self.direct is not None
        ended = await self.direct.run(job_id, callq_job_id, score, token)
        if ended is Ended.DONE:
            self.jobs_complete += 1
        elif ended is Ended.FAILED:
            self.jobs_failed += 1
        else:
            self.jobs_retried += 1

    def _forget_claim(self, job_id: str) -> None:
        self._tokens.pop(job_id, None)

    def _on_job_done(self, job_id: str) -> None:
        self._tokens.pop(job_id, None)
        if self._slot_freed is not None:
            self._slot_freed.set()

    async def renew_leases(self) -> int:
        """Extend the in-progress keys of the jobs running here. Returns how many were extended."""
        if self._renew is None or not self._tokens:
            return 0
        self._renewal_done.clear()  # releases wait for it: DirectLane.bind
        try:
            pairs = [
                item
                for job_id, token in self._tokens.items()
                for item in (in_progress_key_prefix + job_id, token)
            ]
            return int(await self._renew(args=[self.lease_ms, *pairs]))
        finally:
            self._renewal_done.set()

    async def _keep_renewing(self) -> None:
        while True:
            await asyncio.sleep(self.lease_ms / 5000)
            try:
                await self.renew_leases()
            except (RedisError, OSError) as exc:
                logger.warning("arq in-progress renewal failed: %s", type(exc).__name__)

    async def close(self) -> None:
        """arq's close (it waits for the jobs in flight, whose keys are renewed meanwhile), then
        stop renewing. The direct lane's releases owed are sent first, and those of the jobs
        ending meanwhile at once."""
        try:
            if self.direct is not None and self._pool is not None:
                await self.direct.close()
            await super().close()
        finally:
            if self._renewing is not None:
                self._renewing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._renewing
                self._renewing = None

    async def run_job(self, job_id: str, score: int) -> None:
        """arq's ``run_job``; if Redis refuses arq's own bookkeeping before the job ran (its try
        counter), the job is released for any worker to claim once Redis takes writes again.

        Nothing that Redis refusing writes raises leaves here: arq's poll loop re-raises a finished
        task's exception and would stop the worker."""
        try:
            await super().run_job(job_id, score)
        except ResponseError as exc:
            self.gate.refused("arq job start", refusal_or_raise(exc))
            try:
                await self.pool.delete(in_progress_key_prefix + job_id)  # a full Redis takes a delete
            except ResponseError as again:
                # MISCONF, READONLY and NOREPLICAS refuse deletes too: the claim lapses with its lease
                # (it is no longer renewed: the job's task has ended)
                self.gate.refused("arq job release", refusal_or_raise(again))

    async def finish_job(
        self,
        job_id: str,
        finish: bool,
        result_data: bytes | None,
        result_timeout_s: float | None,
        keep_result_forever: bool,
        incr_score: int | None,
        keep_in_progress: float | None,
    ) -> None:
        """arq's ``finish_job`` (remove the job, or put it back with ``Retry``'s delay), sent until
        Redis takes it: a MULTI refused for a full Redis did nothing."""
        finish_job = super().finish_job
        arguments = (
            job_id,
            finish,
            result_data,
            result_timeout_s,
            keep_result_forever,
            incr_score,
            keep_in_progress,
        )
        await self.gate.until_written(lambda: finish_job(*arguments), where="arq finish_job")

    async def record_health(self) -> None:
        """arq's heartbeat (the health-check key readiness checks read). While Redis is full it is
        tried only when a try is due (for any refusal), and is the probe: the first one Redis takes clears the gate."""
        if not self.gate.due():
            return
        if self.gate.refusing:
            self._last_health_check = 0  # write now, whatever arq's interval says
        before = self._last_health_check
        try:
            await super().record_health()
        except ResponseError as exc:
            self.gate.refused("heartbeat", refusal_or_raise(exc))
            return
        if self._last_health_check != before:
            self.gate.accepted()
