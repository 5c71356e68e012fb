"""Fixtures for the tests of the queue (:mod:`schemas.jobqueue`) that drive arq directly."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from arq.connections import ArqRedis, RedisSettings, create_pool


@pytest.fixture
async def arq_pool(redis_url: str, cleanup_prefix: str) -> AsyncIterator[tuple[ArqRedis, str]]:
    """arq's pool, and a queue under the test's prefix (whose keys, arq's included, go afterwards)."""
    queue = f"{cleanup_prefix}:queue"
    pool = await create_pool(RedisSettings.from_dsn(redis_url), default_queue_name=queue)
    yield pool, queue
    await pool.aclose()
