"""How failed requests end: retried only when Bitrix24 refused before executing, never blindly."""

from __future__ import annotations

import dataclasses

from redis.asyncio import Redis

from ops.sandbox import Fault, Sandbox, SandboxHandle
from producers.api import Producer
from tests.support.helpers import FAST, make_settings, running_worker, sandbox_portal, wait_outcomes

TEXT = "Callback request"


async def test_query_limit_pauses_the_portal_and_spends_no_attempt(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """Two QUERY_LIMIT_EXCEEDED then success: succeeded after three requests, with max_attempts=1."""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"), max_attempts=1)}
    )
    sandbox.add_faults([Fault.error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests")] * 2)
    submitted = await Producer(redis, settings=settings).enqueue(
        from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT
    )
    async with running_worker(settings):
        (outcome,) = await wait_outcomes(redis, prefix, 1, timeout_s=15)
    assert outcome["status"] == "succeeded", outcome
    assert outcome["attempts"] == 3
    assert [c.status for c in sandbox.calls()] == [503, 503, 200]
    record = await Producer(redis, settings=settings).status(submitted.job_id)
    assert record is not None
    assert [a.get("code") for a in record.attempt_log] == [
        "QUERY_LIMIT_EXCEEDED",
        "QUERY_LIMIT_EXCEEDED",
        None,
    ]
    gaps = [
        b.received_monotonic - a.received_monotonic
        for a, b in zip(sandbox.calls(), sandbox.calls()[1:], strict=False)
    ]
    assert gaps[0] >= 0.95 and gaps[1] >= 1.9, f"the portal paused 1 s then 2 s: {gaps}"


async def test_internal_server_error_is_dead_after_one_request(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """A 500 may have started the callback: `dead` with OUTCOME_UNKNOWN after exactly one request."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    sandbox.add_faults([Fault.error(500, "INTERNAL_SERVER_ERROR", "Internal server error")])
    await Producer(redis, settings=settings).enqueue(
        from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT
    )
    async with running_worker(settings):
        (outcome,) = await wait_outcomes(redis, prefix, 1)
    assert outcome["status"] == "dead"
    assert outcome["error"]["code"] == "OUTCOME_UNKNOWN"
    assert (
        "HTTP 500" in outcome["error"]["description"]
        and "INTERNAL_SERVER_ERROR" in outcome["error"]["description"]
    )
    assert len(sandbox.calls()) == 1


async def test_unknown_line_is_dead_at_once(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """ERROR_CORE "Could not find line" is permanent: `dead` with Bitrix24's code after one request."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    await Producer(redis, settings=settings).enqueue(
        from_line="nosuchline", to_number="+79111234567", text_to_pronounce=TEXT
    )
    async with running_worker(settings):
        (outcome,) = await wait_outcomes(redis, prefix, 1)
    assert outcome["status"] == "dead"
    assert outcome["error"]["code"] == "ERROR_CORE"
    assert "Could not find line nosuchline" in outcome["error"]["description"]
    assert len(sandbox.calls()) == 1


async def test_connection_refused_is_retried_then_dead(redis_url: str, prefix: str, redis: Redis) -> None:
    """Nothing listening (the request never left): retried with backoff up to max_attempts, then dead."""
    from ops.redis_server import free_port

    url = f"http://127.0.0.1:{free_port()}/rest/1/code/"
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(url, max_attempts=3)})
    await Producer(redis, settings=settings).enqueue(
        from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT
    )
    async with running_worker(settings):
        (outcome,) = await wait_outcomes(redis, prefix, 1, timeout_s=15)
    assert outcome["status"] == "dead"
    assert outcome["attempts"] == 3
    assert outcome["error"]["code"] == "TRANSPORT_ERROR"
    assert "gave up after 3 attempts" in outcome["error"]["description"]


async def test_refused_credentials_halt_the_portal_without_burning_attempts(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """A 401 halts the whole portal: no later job sends meanwhile, status says so, no attempt is spent."""
    import argparse
    import io
    import json

    from ops.cli import jobs as producer_cli
    from tests.support.helpers import wait_for

    # 2/s, no burst: the jobs start 0.5 s apart, so the second and third start while the portal is halted
    settings = make_settings(
        redis_url,
        prefix,
        {"default": sandbox_portal(portal.webhook_url("default"), max_attempts=1, rate=2.0, burst=2)},
    )
    sandbox.add_faults([Fault.error(401, "NO_AUTH_FOUND", "Wrong authorization data")])
    producer = Producer(redis, settings=settings)
    jobs = [
        await producer.enqueue(from_line="reg1332", to_number=f"+7911123456{n}", text_to_pronounce=TEXT)
        for n in range(3)
    ]
    async with running_worker(settings, dataclasses.replace(FAST, pause_s=1.5)):
        from schemas.store.keys import Keys

        await wait_for(lambda: redis.exists(Keys(prefix).portal_halt("default")), what="the portal's halt")
        out = io.StringIO()
        await producer_cli.status(
            argparse.Namespace(id=jobs[2].job_id, json=True), settings=settings, redis=redis, out=out
        )
        halted = json.loads(out.getvalue())["portal_halted"]
        assert halted["code"] == "NO_AUTH_FOUND"
        outcomes = await wait_outcomes(redis, prefix, 3, timeout_s=15)
    assert sorted(o["status"] for o in outcomes) == ["succeeded"] * 3
    assert [c.status for c in sandbox.calls()].count(401) == 1, "nobody else sent while the portal was halted"
    assert len(sandbox.calls()) == 4


async def _count(sandbox: Sandbox) -> int:
    return len(sandbox.calls())


async def test_unrecognised_error_code_is_permanent_and_logged_in_full(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """A code callq does not know is permanent (dead after one request) and its whole body is logged."""
    from structlog.testing import capture_logs

    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    sandbox.add_faults([Fault.error(400, "BRAND_NEW_CODE", "Something Bitrix24 added in 2027")])
    await Producer(redis, settings=settings).enqueue(
        from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT
    )
    with capture_logs() as logs:
        async with running_worker(settings):
            (outcome,) = await wait_outcomes(redis, prefix, 1)
    assert (outcome["status"], outcome["error"]["code"]) == ("dead", "BRAND_NEW_CODE")
    (entry,) = [e for e in logs if e["event"] == "bitrix.unrecognised_error"]
    assert "Something Bitrix24 added in 2027" in entry["body"] and entry["http_status"] == 400
    assert len(sandbox.calls()) == 1


async def test_a_firewall_refusing_every_request_drains_no_job_into_dead_letters(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """An HTML 403 from in front of the portal (a firewall), then an HTML 429 (a proxy's rate limit):
    the portal halts, then pauses; no job dies, none spends an attempt, and all succeed afterwards."""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"), max_attempts=1)}
    )
    sandbox.add_faults(
        [Fault.raw(403, "<html>Forbidden by WAF</html>", executed=False)] * 3
        + [Fault.raw(429, "<html>Too Many Requests</html>", executed=False)] * 2
    )
    producer = Producer(redis, settings=settings)
    for n in range(20):
        await producer.enqueue(from_line="reg1332", to_number=f"+791112345{n:02d}", text_to_pronounce=TEXT)
    async with running_worker(settings, dataclasses.replace(FAST, refused_s=0.5, pause_s=0.5)):
        outcomes = await wait_outcomes(redis, prefix, 20, timeout_s=30)
    assert sorted({o["status"] for o in outcomes}) == ["succeeded"], "no job died for the firewall"
    assert {o["attempts"] for o in outcomes} >= {1}
    refused = [c.status for c in sandbox.calls() if c.status in (403, 429)]
    assert refused == [403] * 3 + [429] * 2
    assert len(sandbox.calls(executed_only=True)) == 20
