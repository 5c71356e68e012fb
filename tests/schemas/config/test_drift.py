"""Processes of one deployment with different configurations are detected, named and shown (issue 11):
:mod:`schemas.config.drift` and its registry, with workers and the HTTP app in this process."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from redis.asyncio import Redis
from structlog.testing import capture_logs

from ops.sandbox import SandboxHandle
from producers.http.app import create_app
from schemas.config import Settings
from schemas.config.drift import ConfigWatch, serve_config_check
from schemas.config.registry import ConfigRegistry
from schemas.store.keys import Keys
from schemas.store.secret import deployment_secret
from tests.support.helpers import make_settings, running_worker, sandbox_portal, wait_for
from worker.service.app import BuiltWorker


def settings_for(redis_url: str, prefix: str, url: str, **changes: Any) -> Settings:
    """Settings with portal default on the sandbox, changed by ``changes``."""
    portals = {"default": sandbox_portal(url, **changes)}
    return make_settings(redis_url, prefix, portals)


def gauge(worker: BuiltWorker) -> str:
    """The callq_config_mismatch line of a worker's metrics."""
    text: str = worker.callbacks.metrics.render().decode()
    return next(line for line in text.splitlines() if line.startswith("callq_config_mismatch "))


async def started(worker: BuiltWorker) -> ConfigWatch:
    """The worker's ConfigWatch, once its start-up has run."""
    await wait_for(lambda: _has_watch(worker), what="the worker's start-up")
    watch = worker.callbacks.config_watch
    assert watch is not None
    return watch


async def _has_watch(worker: BuiltWorker) -> bool:
    return worker.callbacks.config_watch is not None


async def test_two_workers_that_disagree_log_what_differs_until_they_agree(
    redis_url: str, prefix: str, redis: Redis, portal: SandboxHandle
) -> None:
    """A worker started with another rate and an extra portal logs config.mismatch naming the other worker
    and the keys, and both export 1; once it stops, the first logs config.agreed and exports 0."""
    url = portal.webhook_url("default")
    first_settings = settings_for(redis_url, prefix, url)
    other = settings_for(redis_url, prefix, url, rate=5.0)
    other = dataclasses.replace(
        other, portals=MappingProxyType({**other.portals, "beta": sandbox_portal(url, name="beta")})
    )
    async with running_worker(first_settings) as first:
        first_watch = await started(first)
        assert await first_watch.check() == [] and gauge(first) == "callq_config_mismatch 0.0"
        with capture_logs() as logs:
            async with running_worker(other) as second:
                await started(second)
                (mismatch,) = [e for e in logs if e["event"] == "config.mismatch"]
                assert mismatch["log_level"] == "error"
                ((group,),) = [mismatch["differs_from"]]
                assert group["keys"] == ["portals.beta (only here)", "portals.default.rate"]
                assert group["processes"] == [first_watch.me.describe()]
                assert gauge(second) == "callq_config_mismatch 1.0"
                (found,) = await first_watch.check()
                assert found.keys == ("portals.beta (only there)", "portals.default.rate")
                assert gauge(first) == "callq_config_mismatch 1.0"
            assert await first_watch.check() == []
        assert [e["event"] for e in logs if e["event"].startswith("config.")] == [
            "config.mismatch",
            "config.mismatch",
            "config.agreed",
        ]
        assert gauge(first) == "callq_config_mismatch 0.0"


async def test_readyz_fails_when_serve_disagrees_with_every_worker(
    redis_url: str, prefix: str, redis: Redis, portal: SandboxHandle
) -> None:
    """serve's /readyz has a config check: 503 naming the keys when its configuration is none of the live
    workers', 200 when it is one of theirs."""
    url = portal.webhook_url("default")
    workers = settings_for(redis_url, prefix, url)
    keys = Keys(prefix)
    async with running_worker(workers) as worker:
        await started(worker)
        differing = settings_for(redis_url, prefix, url, max_attempts=2)
        expected = "differs from every live worker: portals.default.max_attempts"
        for settings, status, config in ((differing, 503, expected), (workers, 200, "ok")):
            watch = ConfigWatch(
                redis, keys, settings, secret=await deployment_secret(redis, keys), role="serve"
            )
            await watch.check()
            app = create_app(
                redis=redis, settings=settings, allow_no_auth=True, config_check=serve_config_check(watch)
            )
            async with TestClient(TestServer(app)) as client:

                async def ready(app_client: TestClient[Any, Any] = client) -> dict[str, Any] | None:
                    async with app_client.get("/readyz") as resp:
                        body: dict[str, Any] = await resp.json()
                        return body if body["checks"]["worker"] == "ok" else None

                body = await wait_for(ready, what="the worker's health key")
            assert body["checks"]["config"] == config
            assert (body["status"] == "ready") == (status == 200)
            await watch.withdraw()


async def test_a_stopped_worker_leaves_the_registry(
    redis_url: str, prefix: str, redis: Redis, portal: SandboxHandle
) -> None:
    """A worker that stops cleanly removes its entry at once; the registry keeps no key without a TTL."""
    registry = ConfigRegistry(redis, Keys(prefix))
    async with running_worker(settings_for(redis_url, prefix, portal.webhook_url("default"))) as worker:
        watch = await started(worker)
        assert [p.describe() for p in await registry.live()] == [watch.me.describe()]
    assert await registry.live() == []
    for key in (Keys(prefix).config_live, Keys(prefix).config_parts(watch.fingerprint.digest)):
        assert await redis.pttl(key) in (-2, *range(1, 30_001))
