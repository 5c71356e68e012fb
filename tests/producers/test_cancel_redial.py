"""Cancelling a redial that waits (call ``redial``): ``DELETE /v1/callbacks/{id}`` (and the Producer's
cancel behind ``callq cancel`` and the dashboard) ends the follow-up with a final call result
``ended_by: cancelled``, removes the queued redial and keeps the claim like any final call result; a
redial already ``dialling`` cannot be cancelled (409 with why)."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import cast

from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis

from producers.api import Producer
from producers.http.app import create_app
from schemas.config import ApiToken, Settings
from schemas.policy.call_result import CallEnd, CallKind
from schemas.states import CallState, Status
from schemas.store.calls import CallStore, settle_call_end
from schemas.store.keys import Keys
from schemas.wire.outcome import outcome_for
from tests.support.helpers import make_settings, read_call_results, sandbox_portal

OPERATOR = "operator-token-0123456789"
NUMBER = "+79111234567"


def settings_for(redis_url: str, prefix: str) -> Settings:
    portals = {"default": sandbox_portal("http://127.0.0.1:9/rest/1/x/")}
    tokens = (ApiToken(name="ops", token=OPERATOR, access="write"),)
    return make_settings(redis_url, prefix, portals, named_tokens=tokens)


async def waiting_redial(redis: Redis, settings: Settings) -> str:
    """A job that succeeded, whose call was busy: it waits in arq's queue for its redial."""
    producer = Producer(redis, settings=settings)
    submitted = await producer.enqueue(
        from_line="reg1332",
        to_number=NUMBER,
        text_to_pronounce="Hi",
        not_before=datetime.now(UTC) + timedelta(hours=1),
    )
    record = await producer.status(submitted.job_id)
    assert record is not None
    keys = Keys(settings.key_prefix)
    now = datetime.now(UTC)
    outcome = outcome_for(record.job, Status.SUCCEEDED, at=now, attempts=1, call_id="c1").to_json()
    fields = {
        "state": "succeeded",
        "outcome": outcome,
        "call": "awaiting",
        "call_id": "c1",
        "call_attempt": 1,
    }
    await cast(Awaitable[int], redis.hset(keys.job(record.job_id), mapping=fields))
    await redis.zrem(keys.scheduled("default"), record.job_id)
    record = await producer.status(record.job_id)
    assert record is not None
    end = CallEnd(call_id="c1", kind=CallKind.BUSY, code="486", source="push")
    assert (
        await settle_call_end(CallStore.for_settings(redis, settings), settings, record, end, now=now)
    ).done
    after = await producer.status(record.job_id)
    assert after is not None and after.call is not None and after.call.state is CallState.REDIAL
    return record.job_id


async def test_delete_cancels_a_waiting_redial(redis: Redis, redis_url: str, prefix: str) -> None:
    """The redial ends: final call result (busy, ended_by cancelled, who), one call_result entry, the
    queued redial gone (queue entry and arq job), the claim kept for the dedupe window; a second
    DELETE is 409."""
    settings = settings_for(redis_url, prefix)
    job_id = await waiting_redial(redis, settings)
    keys = Keys(prefix)
    assert await redis.zscore(keys.queue, keys.jobs.member(job_id)) is not None
    auth = {"Authorization": f"Bearer {OPERATOR}"}
    async with TestClient(TestServer(create_app(redis=redis, settings=settings))) as client:
        async with client.delete(f"/v1/callbacks/{job_id}", headers=auth) as resp:
            assert resp.status == 200, await resp.text()
            view = await resp.json()
        assert view["status"] == "succeeded" and view["call"]["state"] == "ended"
        (result,) = await read_call_results(redis, prefix)
        assert (result["job_id"], result["result"], result["ended_by"]) == (job_id, "busy", "cancelled")
        assert result["detail"] == "cancelled by ops" and view["call"]["result"] == result
        assert await redis.zscore(keys.queue, keys.jobs.member(job_id)) is None
        assert not await redis.exists(keys.jobs.job(job_id))
        claim = keys.claim("default", "reg1332", NUMBER)
        assert await redis.get(claim) == job_id.encode()
        assert 0 < await redis.pttl(claim) <= settings.portals["default"].dedupe_window_s * 1000
        async with client.delete(f"/v1/callbacks/{job_id}", headers=auth) as resp:
            assert resp.status == 409
            assert "call ended" in (await resp.json())["error"]["description"]
    assert len(await read_call_results(redis, prefix)) == 1


async def test_a_redial_being_dialled_cannot_be_cancelled(redis: Redis, redis_url: str, prefix: str) -> None:
    """A redial whose request may be out (``dialling``) is not cancelled: 409 says why; nothing changes."""
    settings = settings_for(redis_url, prefix)
    job_id = await waiting_redial(redis, settings)
    keys = Keys(prefix)
    await cast(Awaitable[int], redis.hset(keys.job(job_id), "call", "dialling"))
    auth = {"Authorization": f"Bearer {OPERATOR}"}
    app = create_app(redis=redis, settings=settings)
    async with (
        TestClient(TestServer(app)) as client,
        client.delete(f"/v1/callbacks/{job_id}", headers=auth) as resp,
    ):
        assert resp.status == 409
        body = await resp.json()
    assert "being dialled now" in body["error"]["description"]
    assert await cast(Awaitable[bytes | None], redis.hget(keys.job(job_id), "call")) == b"dialling"
    assert await read_call_results(redis, prefix) == []
    cancelled, record = await Producer(redis, settings=settings).cancel(job_id, by="callq cancel")
    assert not cancelled and record is not None and record.call is not None
    assert record.call.state is CallState.DIALLING
