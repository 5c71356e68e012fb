"""Workers keep each portal's voice list fresh in Redis: one worker, one request, per portal per hour."""

from __future__ import annotations

import dataclasses

from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxHandle
from producers.api import Producer
from schemas.store.keys import Keys
from schemas.store.voices import offered_voices
from tests.support.helpers import FAST, make_settings, running_worker, sandbox_portal, wait_for

VOICES = "voximplant.tts.voices.get"


async def test_one_worker_refreshes_and_admission_then_refuses_unknown_voices(
    redis_url: str, prefix: str, redis: Redis, sandbox: Sandbox, portal: SandboxHandle
) -> None:
    """Two workers started together ask the portal once for its voices and store them; a job with a voice
    not on the list is then rejected, one with a listed voice admitted."""
    settings = make_settings(redis_url, prefix, {"default": sandbox_portal(portal.webhook_url("default"))})
    options = dataclasses.replace(FAST, voices_after_s=0.0)
    keys = Keys(prefix)
    async with running_worker(settings, options), running_worker(settings, options):
        await wait_for(lambda: offered_voices(redis, keys, "default"), what="the voice list")
        producer = Producer(redis, settings=settings)
        refused = await producer.enqueue(
            from_line="reg1332", to_number="+79111234567", text_to_pronounce="x", voice="nope"
        )
        admitted = await producer.enqueue(
            from_line="reg1332", to_number="+79111234568", text_to_pronounce="x", voice="usenglishfemale"
        )
    assert (refused.status, admitted.status) == ("rejected", "scheduled")
    assert len(sandbox.calls(method=VOICES)) == 1, "one worker asked, once"
    assert 3500 <= await redis.pttl(keys.voices_refresh("default")) / 1000 <= 3600, "the next in an hour"
