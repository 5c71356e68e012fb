"""Admission refuses a job's own voice that its portal does not offer, once the portal's list is known."""

from __future__ import annotations

import json
from types import MappingProxyType
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from producers.api import Producer
from schemas.config import LineConfig, PortalConfig, Settings
from schemas.store.keys import Keys
from schemas.store.voices import VOICES_TTL_S, offered_voices, store_voices
from tests.support.helpers import ALWAYS_OPEN

TEXT = "Callback request"


def settings_for(prefix: str) -> Settings:
    """One portal whose line reg1333 has a default voice of its own."""
    portal = PortalConfig(
        name="acme",
        webhook_url="https://acme.bitrix24.ru/rest/1/code/",
        timezone=ZoneInfo("UTC"),
        hours=ALWAYS_OPEN,
        lines=MappingProxyType({"reg1333": LineConfig("reg1333", voice="linevoice")}),
    )
    return Settings(key_prefix=prefix, portals=MappingProxyType({"acme": portal}))


async def test_an_unknown_list_refuses_nothing(redis: Redis, prefix: str) -> None:
    """Before any worker or command fetched the portal's voices, any voice is admitted."""
    producer = Producer(redis, settings=settings_for(prefix))
    submitted = await producer.enqueue(
        from_line="reg1332", to_number="+79111234567", text_to_pronounce=TEXT, voice="nope"
    )
    assert submitted.status == "scheduled"


@pytest.mark.parametrize(
    ("line", "voice", "status"),
    [
        ("reg1332", "usenglishfemale", "scheduled"),
        ("reg1332", "nope", "rejected"),
        ("reg1332", "USENGLISHFEMALE", "rejected"),
        ("reg1332", None, "scheduled"),
        ("reg1333", None, "scheduled"),  # the line's default voice is the configuration's: `callq check`
    ],
)
async def test_a_known_list_refuses_a_voice_not_on_it(
    redis: Redis, prefix: str, line: str, voice: str | None, status: str
) -> None:
    """With the list cached, a job's own voice must be on it (exactly); the rejection names the field."""
    await store_voices(
        redis, Keys(prefix), "acme", {"usenglishfemale": "American English (Female) (Default)"}
    )
    producer = Producer(redis, settings=settings_for(prefix))
    submitted = await producer.enqueue(
        from_line=line, to_number="+79111234567", text_to_pronounce=TEXT, voice=voice
    )
    assert submitted.status == status
    if status == "rejected":
        assert submitted.error is not None
        assert submitted.error.to_dict()["fields"] == [
            {
                "field": "voice",
                "message": f"{voice!r} is not offered by portal acme (`callq voices acme` lists them)",
            }
        ]


async def test_the_intake_batch_checks_voices_too(redis: Redis, prefix: str) -> None:
    """Entries admitted in a batch (the stream intake's path) are checked the same way, each on its own."""
    await store_voices(redis, Keys(prefix), "acme", {"usenglishfemale": "x"})
    producer = Producer(redis, settings=settings_for(prefix))
    job = {"from_line": "reg1332", "to_number": "+79111234567", "text_to_pronounce": TEXT}
    entries = [
        (json.dumps({**job, "voice": "nope"}), "s1", "1-0"),
        (json.dumps({**job, "to_number": "+79111234568", "voice": "usenglishfemale"}), "s2", "2-0"),
    ]
    assert [s.status for s in await producer.submit_many(entries)] == ["rejected", "scheduled"]


async def test_the_cached_list_expires_after_a_day(redis: Redis, prefix: str) -> None:
    """The list is kept a day: a list no worker refreshed is forgotten rather than refuse new voices."""
    keys = Keys(prefix)
    await store_voices(redis, keys, "acme", {"a": "b"})
    assert await offered_voices(redis, keys, "acme") == frozenset({"a"})
    assert VOICES_TTL_S - 5 <= await redis.ttl(keys.voices("acme")) <= VOICES_TTL_S
