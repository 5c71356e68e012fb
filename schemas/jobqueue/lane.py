"""callq's own jobs run straight from the claim (the direct lane), without arq's per-job bookkeeping.

arq wraps each job in two MULTIs of its own: before it, a GET of its job key and an INCR and EXPIRE
of its try counter; after it, DELs of the in-progress, try and job keys and ZREMs of the queue entry
(or a ZINCRBY for a retry). A callq job needs none of it: the queue member names the job
(:meth:`~schemas.jobqueue.names.QueueNames.job_id`), the job's record says what it is, callq counts
attempts itself, and the store's final script (FINALIZE) removes the queue entry in the same step as
the final state. So a claimed member that is a callq job runs callq's job function here, and what is
left of arq's second MULTI (the claim's in-progress key; the entry of a job that ended without
FINALIZE; a deferral) is owed as a *release*, sent with the worker's next CLAIM call (which comes
as soon as the slot is taken again) or, when none comes within :data:`RELEASE_AFTER_S`, alone.
A successful job thus makes three Redis calls of its own (read, START, FINALIZE) instead of five,
and the releases of a busy worker cost no round trip.

What a job's end owes (the ``RELEASE`` script, token-checked: only a key still holding this claim's
token goes):

- done (None): the in-progress key. Also the queue entry, if it is still at the score it was claimed
  at (a job that ended without FINALIZE: missing, already final, a result the record no longer
  took) — one a redial or a put-back moved since stays — and with it arq's job key, which callq
  wrote up to 0.2 (a job admitted before the upgrade).
- ``Again()``: the in-progress key only; the store set the job's score itself.
- ``Again(in_s)``: the queue entry moves to ``in_s`` after the job's end (``ZADD XX``: what arq's
  ``Retry(defer)`` did), and the in-progress key goes.
- cancelled (an immediate stop), or ended while the worker stops: the same, sent at once (shielded,
  as arq's ``finish_job``); the job stays in the queue for any worker, and callq's orphan handling
  decides about an attempt it left running.

A release Redis refuses (full, ``MISCONF``...) or cannot take (a lost connection) waits for the
next one; the claim lapses with its lease meanwhile (no longer renewed), so nothing is stuck for
longer than :data:`~schemas.jobqueue.worker.DEFAULT_LEASE_S`. Every release is safe to send twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from arq.constants import in_progress_key_prefix, job_key_prefix, retry_key_prefix
from arq.utils import timestamp_ms
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from schemas.jobqueue.names import QueueNames
from schemas.store.writegate import WriteGate, refusal_or_raise

logger = logging.getLogger("callq.dispatch")

RELEASE_AFTER_S = 0.01
"""A release no CLAIM took along within this is sent alone (the releases owed by then, in one call)."""

FAILED_AGAIN_S = 10.0
"""A job function that raised (it should not: callq's catches what it can) is run again this much later."""

RELEASING = (
    """
-- releases: ARGV[from .. to], (queue member, claim token, kind, value) each; kind 'done' (value:
-- the score it was claimed at), 'again', or 'at' (value: its new score). The in-progress key goes
-- only while it holds the token; a done job's entry only while still at its claimed score. A done
-- job's arq try counter goes too: the lane makes none, but a 0.2 worker that ran the job before it
-- died did (it would stay about a day).
local function release(queue, in_progress, job, from, to)
  for i = from, to, 4 do
    local member, kind, value = ARGV[i], ARGV[i + 2], ARGV[i + 3]
    if kind == 'done' then
      local score = redis.call('ZSCORE', queue, member)
      if score and tonumber(score) == tonumber(value) then
        redis.call('ZREM', queue, member)
        redis.call('DEL', job .. member)
      end
      redis.call('DEL', '"""
    + retry_key_prefix
    + """' .. member)
    elseif kind == 'at' then
      redis.call('ZADD', queue, 'XX', value, member)
    end
    local key = in_progress .. member
    if redis.call('GET', key) == ARGV[i + 1] then redis.call('DEL', key) end
  end
end
"""
)

RELEASE = (
    RELEASING
    + """
-- KEYS: arq queue; ARGV: in-progress key prefix, arq job key prefix, releases...
release(KEYS[1], ARGV[1], ARGV[2], 3, #ARGV)
return 1
"""
)


@dataclass(frozen=True)
class Again:
    """The job runs again: ``in_s`` seconds from now, or (None) where the store already put it in the
    queue (a put-back sets the job's score itself, in the same script as its state)."""

    in_s: float | None = None


JobFunction = Callable[[str], Awaitable[Again | None]]


def _keep(_member: str) -> None:
    return None


async def _at_once() -> None:
    return None


class Ended(Enum):
    """How a job of the lane ended (for arq's counters)."""

    DONE = "done"
    AGAIN = "again"
    CANCELLED = "cancelled"
    FAILED = "failed"


def release_of(member: str, token: str, score: str, again: Again | None) -> list[str]:
    """The release a job's end owes (``RELEASE``'s four arguments).

    Args:
        member: the job's queue member.
        token: the token of the claim that took it.
        score: the score it was claimed at (as Redis gave it).
        again: what the job function returned.
    """
    if again is None:
        return [member, token, "done", score]
    if again.in_s is None:
        return [member, token, "again", ""]
    return [member, token, "at", str(timestamp_ms() + int(again.in_s * 1000))]


class DirectLane:
    """callq's jobs among a worker's claims: run here, their releases owed until sent.

    Args:
        redis: the pool.
        names: arq's names of the deployment's jobs (a member that parses is a callq job).
        job: the job function.
        gate: whether Redis takes writes (shared with the worker).
    """

    def __init__(self, *, redis: Redis, names: QueueNames, job: JobFunction, gate: WriteGate) -> None:
        self.redis = redis
        self.names = names
        self.job = job
        self.gate = gate
        self.stopping = False
        """Set when the worker closes: releases are then sent at once, not batched."""
        self._owed: list[str] = []
        self._wanted = asyncio.Event()
        self._release = redis.register_script(RELEASE)
        self._releasing: asyncio.Task[None] | None = None
        self._forget: Callable[[str], None] = _keep
        self._renewal_done: Callable[[], Awaitable[object]] = _at_once

    def bind(self, *, forget: Callable[[str], None], renewal_done: Callable[[], Awaitable[object]]) -> None:
        """Tie the lane to the worker's lease renewal (:class:`~schemas.jobqueue.worker.BatchClaimWorker`).

        A renewal takes back a claim key that is gone while its job runs (it lapsed while Redis was
        away); one sent with a claim's token before the job ended but run by Redis after its release
        would take back a released key, which would then hold the job from every worker for a lease.
        So a job's claim is forgotten (no renewal names it any more) when its function returns, and
        every release waits for a renewal in flight to end.

        Args:
            forget: stop renewing a member's claim.
            renewal_done: returns once no renewal is in flight.
        """
        self._forget = forget
        self._renewal_done = renewal_done

    def job_id(self, member: str) -> str | None:
        """The callq job id of a queue member, or None when it is not a callq job (arq's own)."""
        try:
            return self.names.job_id(member)
        except ValueError:
            return None

    async def run(self, member: str, job_id: str, score: str, token: str) -> Ended:
        """Run one job of the lane and owe (or send) its release. Raises nothing: arq's poll loop
        re-raises a finished task's exception, and arq's ``close`` gathers the tasks.

        Args:
            member: its queue member.
            job_id: its callq job id.
            score: the score it was claimed at.
            token: the claim's token (its in-progress key's value).
        """
        try:
            again = await self.job(job_id)
        except asyncio.CancelledError:
            self._forget(member)
            # as arq's run_job: the job stays in the queue, its claim goes at once. arq's close()
            # cancels again what an immediate stop left running: the release then goes on unwatched
            # (arq's finish_job would re-raise it out of close())
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self.send([member, token, "again", ""]))
            return Ended.CANCELLED
        except Exception:
            self._forget(member)
            logger.exception("direct lane job %s failed", job_id)
            release = release_of(member, token, score, Again(in_s=FAILED_AGAIN_S))
            await self._owe_or_send(release)
            return Ended.FAILED
        self._forget(member)
        await self._owe_or_send(release_of(member, token, score, again))
        return Ended.DONE if again is None else Ended.AGAIN

    async def _owe_or_send(self, release: list[str]) -> None:
        if self.stopping:
            await asyncio.shield(self.send(release))
            return
        self._owed += release
        if self._releasing is None:
            self._releasing = asyncio.create_task(self._keep_releasing())
        self._wanted.set()

    def take(self) -> list[str]:
        """The releases owed (a CLAIM call sends them); :meth:`give_back` if it fails."""
        owed, self._owed = self._owed, []
        return owed

    def give_back(self, releases: list[str]) -> None:
        """Releases a call did not send (Redis refused it or was away): owed again."""
        if releases:
            self._owed = releases + self._owed
            self._wanted.set()

    async def send(self, releases: list[str]) -> bool:
        """Send ``releases`` now, in one call; on a refusal or a lost Redis they are owed again.
        Returns whether Redis took them."""
        if not releases:
            return True
        try:
            await self._renewal_done()
            await self._release(keys=[self.names.queue], args=self.script_args(releases))
        except ResponseError as exc:
            self.gate.refused("arq job release", refusal_or_raise(exc))
        except (RedisError, OSError) as exc:
            logger.warning("arq job release failed: %s", type(exc).__name__)
        else:
            return True
        self.give_back(releases)
        return False

    @staticmethod
    def script_args(releases: list[str]) -> list[str]:
        """``RELEASE``'s arguments (and CLAIM's release part): the key prefixes, then the releases."""
        return [in_progress_key_prefix, job_key_prefix, *releases]

    async def flush(self) -> None:
        """Send what is owed now (the worker stops, a burst run ended)."""
        await self.send(self.take())

    async def _keep_releasing(self) -> None:
        while True:
            await self._wanted.wait()
            await asyncio.sleep(max(RELEASE_AFTER_S, self.gate.wait_s()))
            self._wanted.clear()
            if not await self.send(self.take()):
                await asyncio.sleep(max(self.gate.wait_s(), RELEASE_AFTER_S))

    async def close(self) -> None:
        """Send what is owed and stop the background sender."""
        self.stopping = True
        await self.flush()
        if self._releasing is not None:
            self._releasing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._releasing
            self._releasing = None
