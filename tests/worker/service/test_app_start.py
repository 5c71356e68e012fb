"""A worker that crashes while it starts leaves no HTTP session open (aiohttp would warn of it)."""

from __future__ import annotations

import aiohttp
import pytest
from redis.asyncio import Redis

from tests.support.helpers import make_settings, sandbox_portal
from worker.service import app
from worker.service.app import CallbackWorker, WorkerOptions
from worker.service.metrics import Metrics


async def test_a_crash_at_start_closes_the_session(
    redis: Redis, redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """start() that fails after opening the session closes it before the error propagates."""
    settings = make_settings(
        redis_url, prefix, {"default": sandbox_portal("https://acme.bitrix24.ru/rest/1/x/")}
    )
    callbacks = CallbackWorker(settings, redis, WorkerOptions(), Metrics())
    opened: list[aiohttp.ClientSession] = []

    def crash(*_args: object, **_kwargs: object) -> None:
        assert callbacks.session is not None
        opened.append(callbacks.session)
        raise RuntimeError("a collaborator failed at start")

    monkeypatch.setattr(app, "AttemptLeases", crash)
    with pytest.raises(RuntimeError):
        await callbacks.start()
    assert opened and opened[0].closed and callbacks.session is None
    await callbacks.close_session()  # a second close (the shutdown hook's) is harmless
