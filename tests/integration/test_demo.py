"""`make run` (`callq worker --sandbox --demo`) shows a callback reaching the client: its outcome, then
the call result once the sandbox has played the call out."""

from __future__ import annotations

import json

from redis.asyncio import Redis

from tests.support.helpers import read_call_results, read_outcomes
from tests.support.processes import callq_env, run_callq


async def test_the_demo_shows_the_callback_reaching_the_client(
    redis_url: str, prefix: str, redis: Redis
) -> None:
    """The demo prints the succeeded outcome, then `the callback reached the client` with the call result
    (connected, masked number) that the outcome stream also got; it exits 0."""
    env = callq_env(CALLQ_REDIS_URL=redis_url, CALLQ_KEY_PREFIX=prefix)
    code, out, err = await run_callq(
        ["--log-format", "json", "worker", "--sandbox", "--demo", "--exit-after-demo"], env, timeout_s=90
    )
    assert code == 0, err[-2000:]
    head, _, tail = out.partition("demo: the callback reached the client (connected, learnt by pull):\n")
    assert tail, out
    outcome, result = json.loads(head), json.loads(tail)
    assert outcome["status"] == "succeeded"
    assert (result["job_id"], result["connected"], result["ended_by"]) == (
        outcome["job_id"],
        True,
        "connected",
    )
    (streamed,) = await read_call_results(redis, prefix)
    assert streamed == result
    assert [o["job_id"] for o in await read_outcomes(redis, prefix)] == [outcome["job_id"]]
    assert "***" in result["to_number"]
    assert '"event": "demo.call_result"' in err
