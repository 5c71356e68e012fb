"""When no Redis answers (:mod:`ops.cli.redis_check`) and no throwaway one may be started, the command is
told in one line what to do, without the password (the throwaway: ``tests/integration/test_redis_check.py``)."""

from __future__ import annotations

import pytest

from ops.cli.redis_check import RedisUnavailable, ensure_redis
from ops.redis_server import free_port
from tests.support.helpers import make_settings


async def test_no_redis_and_no_throwaway_says_what_to_do_without_the_password(prefix: str) -> None:
    """Without the demo's leave, an unanswered URL raises RedisUnavailable naming it, its password masked."""
    url = f"redis://:s3cretPassw0rd@127.0.0.1:{free_port()}/0"
    with pytest.raises(RedisUnavailable) as info:
        async with ensure_redis(make_settings(url, prefix), allow_throwaway=False):
            pass
    message = str(info.value)
    assert "no Redis answers at redis://:***@127.0.0.1:" in message and "CALLQ_REDIS_URL" in message
    assert "s3cretPassw0rd" not in message
