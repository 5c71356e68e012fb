"""The voices each portal offers (``voximplant.tts.voices.get``), cached in Redis for admission.

Workers refresh the list hourly (one worker per portal per hour); ``callq check`` and ``callq
voices`` refresh it too. Admission (:mod:`producers.api`) refuses a job's own ``voice`` that the
portal does not offer while the list is known; an unknown list (never fetched, or older than a day)
refuses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime

from redis.asyncio import Redis

from schemas.store.keys import Keys

VOICES_TTL_S = 24 * 3600
"""A list not refreshed for a day is forgotten: a stale list must not refuse a voice added since."""


async def offered_voices(redis: Redis, keys: Keys, portal: str) -> frozenset[str] | None:
    """The voice ids ``portal`` offers, or None when the list is not known."""
    raw = await redis.get(keys.voices(portal))
    try:
        voices = json.loads(raw)["voices"] if raw else None
    except (ValueError, KeyError, TypeError):
        return None
    return frozenset(str(voice) for voice in voices) if isinstance(voices, dict) else None


async def store_voices(redis: Redis, keys: Keys, portal: str, voices: Mapping[str, str]) -> None:
    """Remember the voices ``portal`` offers (id -> description), for :data:`VOICES_TTL_S`."""
    value = json.dumps(
        {"voices": dict(voices), "fetched_at": datetime.now(UTC).isoformat(timespec="seconds")},
        ensure_ascii=False,
    )
    await redis.set(keys.voices(portal), value, ex=VOICES_TTL_S)
