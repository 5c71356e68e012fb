"""The call follow-up's machine (:data:`schemas.states.CALL_TRANSITIONS`) walked against the store's real
scripts, and the follow-up's writes: one final call result, one entry on the outcome stream."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import cast
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from schemas.config import PortalConfig, Settings
from schemas.policy.bucket import pacing_bucket
from schemas.policy.call_result import CallEnd, CallKind
from schemas.policy.hours import parse_hours
from schemas.states import CALL_TRANSITIONS, NO_CALL, CallState, CallStep, Status, call_allowed
from schemas.store.calls import OUTCOME_FIELDS, CallStore, cancel_redial, settle_call_end
from schemas.store.keys import Keys
from schemas.store.ledger import Ledger
from schemas.store.records import to_ms
from schemas.store.replies import CallVerdict, StartVerdict
from schemas.store.stats import MINUTE_TTL_MS, minute_of, reached_ratio
from schemas.wire.job import CallbackJob
from schemas.wire.outcome import outcome_for
from tests.support.helpers import read_call_results, read_outcomes

NOW = datetime.now(UTC)
JOB = CallbackJob(
    job_id="j1",
    portal="default",
    from_line="reg1332",
    to_number="+79111234567",
    text_to_pronounce="Hi",
    created_at="2026-11-30T00:00:00Z",
)
PORTAL = PortalConfig(
    name="default",
    webhook_url="https://example.bitrix24.ru/rest/1/x/",
    timezone=ZoneInfo("UTC"),
    hours=parse_hours(
        {d: "00:00-24:00" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}, where="h"
    ),
)
SOURCES = [NO_CALL, *CallState]


@pytest.fixture
def store(redis: Redis, prefix: str) -> CallStore:
    """A call store under the test's prefix."""
    return CallStore(redis, keys=Keys(prefix), retention_s=60, outcomes_maxlen=100)


async def put(redis: Redis, store: CallStore, call: str, *, state: str = Status.SUCCEEDED) -> None:
    """A succeeded record whose call follow-up is in ``call``."""
    fields: dict[str, str | int] = {"job": JOB.to_json(), "state": state, "attempts": 1}
    if state == Status.SUCCEEDED:
        fields["outcome"] = outcome_for(JOB, Status.SUCCEEDED, at=NOW, attempts=1, call_id="c1").to_json()
    if call != NO_CALL:
        fields |= {"call": call, "call_id": "c1", "call_attempt": 1, "call_since": 1, "call_lease": "t"}
    await cast(Awaitable[int], redis.hset(store.keys.job(JOB.job_id), mapping=fields))


async def call_of(redis: Redis, store: CallStore) -> str:
    raw = await cast(Awaitable[bytes | None], redis.hget(store.keys.job(JOB.job_id), "call"))
    return raw.decode() if raw else NO_CALL


async def make(store: CallStore, step: CallStep, redis: Redis, *, source: str = "") -> bool:
    ledger = Ledger(redis, keys=store.keys, retention_s=60, outcomes_maxlen=100)
    record = await ledger.read(JOB.job_id)
    assert record is not None
    if step is CallStep.FOLLOW and source == NO_CALL:
        async with redis.pipeline(transaction=True) as pipe:
            await store.follow_in(JOB.job_id, PORTAL, call_id="c1", attempt=1, now=NOW)(pipe)
            (reply,) = await pipe.execute()
        return bool(reply[0] == b"ok")
    if step is CallStep.FOLLOW:
        written = await store.follow_redial(
            JOB.job_id, PORTAL, call_id="c2", attempt=2, now=NOW, token="t", attempt_entry={"x": 1}
        )
        return written.done
    if step is CallStep.REDIAL_START:
        started = await store.redial_start(
            JOB.job_id, portal="default", now=NOW, info={}, lease_s=30, token="u"
        )
        return started.verdict is StartVerdict.STARTED
    if step is CallStep.CANCEL:
        settings = Settings(key_prefix=store.keys.prefix, portals={"default": PORTAL})
        return (await cancel_redial(store, settings, record, by="ops", now=NOW)).done
    final = {"job_id": JOB.job_id} if step is CallStep.CALL_END else None
    run_at = NOW + timedelta(minutes=5) if step is CallStep.REDIAL else None
    written = await store.write_end(record, step=step, now=NOW, final=final, run_at=run_at, claim_ttl_s=60)
    return written.done


@pytest.mark.parametrize("step", list(CallStep))
@pytest.mark.parametrize("source", SOURCES)
async def test_call_table_walk(redis: Redis, store: CallStore, step: CallStep, source: str) -> None:
    """Each call step from each state is made exactly when the table allows it, and changes nothing otherwise."""
    await put(redis, store, source)
    targets = {t.target for t in CALL_TRANSITIONS if t.step == step and t.source == source}
    made = await make(store, step, redis, source=source)
    after = await call_of(redis, store)
    assert made is bool(targets), (step, source, after)
    if made:
        assert call_allowed(step, source, after)
    else:
        assert after == source


@pytest.mark.parametrize("state", [Status.RUNNING, Status.DEAD, Status.SCHEDULED])
async def test_only_succeeded_jobs_are_followed(redis: Redis, store: CallStore, state: Status) -> None:
    """A job that did not succeed has no call to follow: every call step is refused."""
    await put(redis, store, CallState.AWAITING, state=state)
    for step in CallStep:
        assert not await make(store, step, redis)
    assert await call_of(redis, store) == CallState.AWAITING


async def test_one_final_result(redis: Redis, store: CallStore, prefix: str) -> None:
    """A call's end pushed and pulled (or pushed twice) gives one final result and one stream entry."""
    await put(redis, store, CallState.AWAITING)
    ledger = Ledger(redis, keys=store.keys, retention_s=60, outcomes_maxlen=100)
    settings = Settings(key_prefix=prefix, portals={"default": PORTAL})
    end = CallEnd(call_id="c1", kind=CallKind.CONNECTED, code="200", duration_s=12, source="push")
    verdicts = []
    for _ in range(3):
        record = await ledger.read(JOB.job_id)
        assert record is not None
        verdicts.append((await settle_call_end(store, settings, record, end, now=NOW)).verdict)
    assert verdicts == [CallVerdict.WRITTEN, CallVerdict.BUSY, CallVerdict.BUSY]
    (result,) = await read_call_results(redis, prefix)
    assert (result["result"], result["connected"], result["ended_by"]) == ("connected", True, "connected")
    assert result["to_number"] != JOB.to_number
    assert json.dumps(result).count("+79111234567") == 0


async def test_call_result_entry_carries_the_outcome(redis: Redis, store: CallStore, prefix: str) -> None:
    """The call result's stream entry also has ``outcome``: the job's stored outcome, unchanged, with
    its ``call`` added, so a reader of ``fields["outcome"]`` that upserts by job id sees it updated."""
    await put(redis, store, CallState.AWAITING)
    stored = json.loads(await cast(Awaitable[bytes], redis.hget(store.keys.job(JOB.job_id), "outcome")))
    ledger = Ledger(redis, keys=store.keys, retention_s=60, outcomes_maxlen=100)
    settings = Settings(key_prefix=prefix, portals={"default": PORTAL})
    record = await ledger.read(JOB.job_id)
    assert record is not None
    end = CallEnd(call_id="c1", kind=CallKind.DECLINED, code="603")
    await settle_call_end(store, settings, record, end, now=NOW)
    ((_id, fields),) = await redis.xrange(store.keys.outcomes)
    assert fields[b"kind"] == b"call_result"
    outcome = json.loads(fields[b"outcome"])
    call = outcome.pop("call")
    assert outcome == stored
    assert (outcome["status"], outcome["job_id"]) == ("succeeded", JOB.job_id)
    (result,) = await read_call_results(redis, prefix)
    assert call == {k: v for k, v in result.items() if k not in OUTCOME_FIELDS}
    assert (call["result"], call["ended_by"]) == ("declined", "not_redialled")
    assert await read_outcomes(redis, prefix) == []


async def test_redial_holds_the_claim_and_queues(redis: Redis, store: CallStore, prefix: str) -> None:
    """A busy call redials: the job is queued at the policy's delay, holding its line + number claim."""
    await put(redis, store, CallState.AWAITING)
    ledger = Ledger(redis, keys=store.keys, retention_s=60, outcomes_maxlen=100)
    settings = Settings(key_prefix=prefix, portals={"default": PORTAL})
    record = await ledger.read(JOB.job_id)
    assert record is not None
    end = CallEnd(call_id="c1", kind=CallKind.BUSY, code="486")
    assert (await settle_call_end(store, settings, record, end, now=NOW)).verdict is CallVerdict.WRITTEN
    k = store.keys
    assert await call_of(redis, store) == CallState.REDIAL
    assert await redis.get(k.claim("default", "reg1332", JOB.to_number)) == b"j1"
    score = await redis.zscore(k.queue, k.jobs.member("j1"))
    assert score is not None and abs(score - (NOW + timedelta(seconds=300)).timestamp() * 1000) < 1000
    assert await read_call_results(redis, prefix) == []


async def test_redial_refused_when_another_job_holds_the_number(
    redis: Redis, store: CallStore, prefix: str
) -> None:
    """A redial never takes a line + number another job holds: the result is final instead."""
    await put(redis, store, CallState.AWAITING)
    await redis.set(store.keys.claim("default", "reg1332", JOB.to_number), "other")
    ledger = Ledger(redis, keys=store.keys, retention_s=60, outcomes_maxlen=100)
    record = await ledger.read(JOB.job_id)
    assert record is not None
    settings = Settings(key_prefix=prefix, portals={"default": PORTAL})
    end = CallEnd(call_id="c1", kind=CallKind.NO_ANSWER, code="304")
    await settle_call_end(store, settings, record, end, now=NOW)
    (result,) = await read_call_results(redis, prefix)
    assert result["ended_by"] == "not_redialled"
    assert await redis.get(store.keys.claim("default", "reg1332", JOB.to_number)) == b"other"


async def test_a_final_result_is_counted_for_the_dashboards_reached_ratio(
    redis: Redis, store: CallStore, prefix: str
) -> None:
    """The final call result is counted by kind in the portal's stats of the minute (not a redial)."""
    await put(redis, store, CallState.AWAITING)
    ledger = Ledger(redis, keys=store.keys, retention_s=60, outcomes_maxlen=100)
    settings = Settings(key_prefix=prefix, portals={"default": PORTAL})
    record = await ledger.read(JOB.job_id)
    assert record is not None
    end = CallEnd(call_id="c1", kind=CallKind.CONNECTED, code="200", duration_s=30)
    await settle_call_end(store, settings, record, end, now=NOW)
    stats_key = store.keys.minute_stats("default", minute_of(to_ms(NOW)))
    raw = await cast(Awaitable[dict[bytes, bytes]], redis.hgetall(stats_key))
    counts = {k.decode(): int(v) for k, v in raw.items()}
    assert counts == {"call:connected": 1}
    assert reached_ratio(counts) == 1.0
    assert 0 < await redis.pttl(stats_key) <= MINUTE_TTL_MS


@pytest.mark.parametrize(
    ("counts", "ratio"),
    [
        ({}, None),
        ({"succeeded": 4}, None),
        ({"call:connected": 3, "call:busy": 1}, 0.75),
        ({"call:connected": 1, "call:unknown": 5}, 1.0),  # an unknown end is not a known miss
        ({"call:no_answer": 2, "call:declined": 2}, 0.0),
    ],
)
def test_reached_ratio(counts: dict[str, int], ratio: float | None) -> None:
    """Connected over the final results whose end is known."""
    assert reached_ratio(counts) == ratio


@pytest.mark.parametrize("burst", [2, 3, 4, 5, 10])
@pytest.mark.parametrize("rate", [2.0, 3.0])
async def test_an_idle_bucket_always_lends_a_spare_slot(store: CallStore, rate: float, burst: int) -> None:
    """At any ``burst`` (down to 2, a pacing bucket of depth 1) an idle bucket lends a follow-up a spare slot."""
    assert await store.reserve_spare("default", pacing_bucket(rate, burst)) == 0


@pytest.mark.parametrize("burst", [2, 3, 4, 5, 10])
async def test_a_bucket_in_use_by_callbacks_lends_no_spare_slot(store: CallStore, burst: int) -> None:
    """Once callbacks have taken what the bucket has now (and one reserved ahead), no spare slot is
    taken: the follow-up is told to wait and the callbacks' next slot is where it was."""
    bucket = pacing_bucket(2.0, burst)
    keys = [store.keys.rate_bucket("default"), store.keys.portal_pause("default")]
    depth = bucket.burst
    delays = [
        await store.scripts.reserve(keys=keys, args=[bucket.interval_ms, bucket.tolerance_ms])
        for _ in range(depth)
    ]
    assert (
        delays[-1]
        <= 0
        < await store.scripts.reserve(keys=keys, args=[bucket.interval_ms, bucket.tolerance_ms])
    )
    tat = await store.redis.get(keys[0])
    assert await store.reserve_spare("default", bucket) > 0
    assert await store.redis.get(keys[0]) == tat


async def test_a_spare_slot_of_a_depth_2_bucket_leaves_one_slot_to_callbacks(store: CallStore) -> None:
    """A bucket of depth 2 (``burst`` 3) lends one spare slot while idle and keeps the other for a
    callback: a second spare slot is refused, and a callback still goes at once."""
    bucket = pacing_bucket(2.0, 3)
    assert await store.reserve_spare("default", bucket) == 0
    assert await store.reserve_spare("default", bucket) > 0
    keys = [store.keys.rate_bucket("default"), store.keys.portal_pause("default")]
    assert await store.scripts.reserve(keys=keys, args=[bucket.interval_ms, bucket.tolerance_ms]) <= 0
