"""The state machine (:mod:`schemas.states`) walked against the store's real scripts: every transition the
table allows is made, every one it forbids is refused and leaves the record as it was."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from redis.asyncio import Redis

from schemas.states import GONE, NEW, TRANSITIONS, Status, Step, allowed, lua_rules
from schemas.store.keys import Keys
from schemas.store.ledger import AdmitRequest, Ledger
from schemas.store.replies import AdmitVerdict, FinalizeVerdict, RescheduleVerdict, StartVerdict
from schemas.wire.job import CallbackJob
from schemas.wire.outcome import outcome_for

NOW = datetime.now(UTC)
SOURCES = [NEW, *Status]
JOB = CallbackJob(
    job_id="j1",
    portal="default",
    from_line="reg1332",
    to_number="+79111234567",
    text_to_pronounce="Hi",
    created_at="2026-11-30T00:00:00Z",
)


@pytest.fixture
def ledger(redis: Redis, prefix: str) -> Ledger:
    """A ledger under the test's prefix."""
    return Ledger(redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=100)


async def put(redis: Redis, ledger: Ledger, job: CallbackJob, state: str) -> None:
    """A record in ``state`` (nothing for ``new``), as the scripts would have left it."""
    if state == NEW:
        return
    fields = {"job": job.to_json(), "state": state, "attempts": 1}
    await cast(Awaitable[int], redis.hset(ledger.keys.job(job.job_id), mapping=fields))


async def state_of(redis: Redis, ledger: Ledger, job_id: str) -> str:
    """The record's state, ``new`` if there is none."""
    raw = await cast(Awaitable[bytes | None], redis.hget(ledger.keys.job(job_id), "state"))
    return raw.decode() if raw else NEW


async def admit(ledger: Ledger, job: CallbackJob, _target: str) -> bool:
    admission = await ledger.admit(AdmitRequest(job=job, run_at=NOW, pending_ttl_s=3600), now=NOW)
    return admission.verdict is AdmitVerdict.NEW


async def record(ledger: Ledger, job: CallbackJob, target: str) -> bool:
    result = await ledger.record_final(outcome_for(job, Status(target), at=NOW), job=job)
    return result.verdict is FinalizeVerdict.WRITTEN


def finalize(step: Step) -> Callable[[Ledger, CallbackJob, str], Awaitable[bool]]:
    async def run(ledger: Ledger, job: CallbackJob, target: str) -> bool:
        result = await ledger.finalize(outcome_for(job, Status(target), at=NOW), job=job, step=step)
        return result.written

    return run


async def start(ledger: Ledger, job: CallbackJob, _target: str) -> bool:
    begun = await ledger.start_attempt(job.job_id, portal=job.portal, now=NOW, info={}, lease_s=5)
    return begun.verdict is StartVerdict.STARTED


async def put_back(ledger: Ledger, job: CallbackJob, target: str) -> bool:
    later = NOW + timedelta(minutes=1)
    result = await ledger.reschedule(job.job_id, state=Status(target), run_at=later, expect=set(Status))
    return result.verdict is RescheduleVerdict.OK


async def replay(ledger: Ledger, job: CallbackJob, _target: str) -> bool:
    replaying = dataclasses.replace(JOB, job_id="j2", replay_of=job.job_id, to_number="+79111234568")
    admission = await ledger.admit(AdmitRequest(job=replaying, run_at=NOW, pending_ttl_s=3600), now=NOW)
    return admission.verdict is AdmitVerdict.NEW


async def purge(ledger: Ledger, job: CallbackJob, _target: str) -> bool:
    return await ledger.purge([job.job_id]) == 1


STEPS: dict[Step, tuple[Callable[[Ledger, CallbackJob, str], Awaitable[bool]], list[str]]] = {
    Step.ADMIT: (admit, [Status.SCHEDULED]),
    Step.RECORD: (record, list(Status)),
    Step.START: (start, [Status.RUNNING]),
    Step.PUT_BACK: (put_back, [Status.SCHEDULED, Status.RETRYING]),
    Step.FINISH: (finalize(Step.FINISH), list(Status)),
    Step.CANCEL: (finalize(Step.CANCEL), list(Status)),
    Step.REPLAY: (replay, [Status.DEAD]),
    Step.PURGE: (purge, [GONE]),
}
CASES = [
    (step, source, target) for step, (_, targets) in STEPS.items() for source in SOURCES for target in targets
]


@pytest.mark.parametrize(("step", "source", "target"), CASES, ids=[f"{s}:{a}->{b}" for s, a, b in CASES])
async def test_each_step_does_exactly_what_the_table_allows(
    redis: Redis, ledger: Ledger, step: Step, source: str, target: str
) -> None:
    """A step from ``source`` to ``target`` is made if the table allows it, else refused with nothing changed."""
    run, _ = STEPS[step]
    await put(redis, ledger, JOB, source)
    done = await run(ledger, JOB, target)
    after = await state_of(redis, ledger, JOB.job_id)
    expected = allowed(step, source, target)
    assert done is expected, (step, source, target)
    if step is Step.REPLAY:
        replayed = await cast(Awaitable[bool], redis.hexists(ledger.keys.job(JOB.job_id), "replayed_by"))
        assert (after, bool(replayed)) == ((source, True) if expected else (source, False))
    elif step is Step.PURGE:
        assert after == (NEW if expected else source)
    else:
        assert after == (target if expected else source)


def test_every_transition_of_the_table_is_walked() -> None:
    """The walk above covers every transition the table allows (no step is left untested)."""
    walked = {(step, source, target) for step, source, target in CASES if allowed(step, source, target)}
    assert walked == {(t.step, t.source, t.target) for t in TRANSITIONS}


def test_the_rules_rendered_for_lua_name_every_state() -> None:
    """The Lua rules carry each state's name and each step's table."""
    rules = lua_rules()
    assert all(f"'{status}'" in rules for status in Status)
    assert all(f"{step}=" in rules for step in Step)
