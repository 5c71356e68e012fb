"""When no Redis answers (:mod:`ops.cli.redis_check`), the sandbox demo starts a throwaway ``redis-server``
that is gone afterwards."""

from __future__ import annotations

import shutil

import pytest
from structlog.testing import capture_logs

from ops.cli.redis_check import ensure_redis, ping
from ops.redis_server import free_port
from tests.support.helpers import make_settings


async def test_a_throwaway_redis_answers_while_needed_and_is_gone_after(prefix: str) -> None:
    """Nothing on the configured local port: a private redis-server answers inside the block, is logged
    as redis.throwaway_started, and no longer answers once the block ends."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    settings = make_settings(f"redis://127.0.0.1:{free_port()}/0", prefix)
    with capture_logs() as logs:
        async with ensure_redis(settings, allow_throwaway=True) as ready:
            assert ready.redis_url != settings.redis_url
            assert await ping(ready.redis_url) is None
    assert [e["url"] for e in logs if e["event"] == "redis.throwaway_started"] == [ready.redis_url]
    assert await ping(ready.redis_url, timeout_s=0.5) is not None
