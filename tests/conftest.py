"""Shared fixtures: a real Redis (never fakeredis), a key prefix per test, the sandbox portal.

Tests touch only keys under their own prefix (and arq's keys of their own job ids); teardown
deletes exactly those. ``CALLQ_TEST_REDIS_URL`` points the suite at another Redis.

A test that starts a process (a subprocess, ``asyncio.create_subprocess_exec``, a fork) fails unless it is
marked ``integration``, which every test under ``tests/integration/`` is: ``make test-fast`` stays single-process.
"""

from __future__ import annotations

import os
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Any

import pytest
import redis as sync_redis
import structlog
from redis.asyncio import Redis

from ops.redis_server import RedisServer
from ops.sandbox import Sandbox, SandboxHandle, SandboxPortal, running_sandbox

REDIS_URL = os.environ.get("CALLQ_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

SPAWNING = frozenset(
    {"subprocess.Popen", "os.posix_spawn", "os.fork", "os.forkpty", "os.system", "os.exec", "os.spawn"}
)
"""The audit events (``sys.audit``) of starting a process."""


class _SingleProcess:
    """The test running now if it may not start a process (an audit hook cannot be removed, so it stays
    installed and asks this)."""

    test: str | None = None

    @classmethod
    def audit(cls, event: str, _args: tuple[Any, ...]) -> None:
        if cls.test is not None and event in SPAWNING:
            raise RuntimeError(
                f"{cls.test} starts a process ({event}): a test that does belongs under tests/integration/"
            )


sys.addaudithook(_SingleProcess.audit)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    """Run a test that is not marked ``integration`` with process starts refused."""
    _SingleProcess.test = None if item.get_closest_marker("integration") else item.nodeid
    try:
        yield
    finally:
        _SingleProcess.test = None


def _answers(url: str) -> str | None:
    client = sync_redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
        return None
    except sync_redis.RedisError as exc:
        return str(exc)
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The Redis the suite uses: the configured one, else a private redis-server; else stop at once."""
    problem = _answers(REDIS_URL)
    if problem is None:
        yield REDIS_URL
        return
    if shutil.which("redis-server") is None:
        pytest.exit(f"no Redis at {REDIS_URL} ({problem}) and no redis-server installed", returncode=2)
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server.url


@pytest.fixture
def prefix() -> str:
    """A key prefix that no other test (or deployment) uses."""
    return f"callqtest-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def cleanup_prefix(redis_url: str, prefix: str) -> Iterator[str]:
    """Delete this test's keys afterwards, whatever made them (a worker process, a CLI run)."""
    yield prefix
    client = sync_redis.Redis.from_url(redis_url)
    try:
        for pattern in (f"{prefix}:*", f"arq:*:{prefix}:*"):
            batch = list(client.scan_iter(match=pattern, count=1000))
            for start in range(0, len(batch), 500):
                client.delete(*batch[start : start + 500])
    finally:
        client.close()


@pytest.fixture
async def redis(redis_url: str, cleanup_prefix: str) -> AsyncIterator[Redis]:
    """A client for this test; its keys are removed after the test."""
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def sandbox() -> Sandbox:
    """A sandbox portal ``default`` with a high rate limit, so only tests that want 503s see them."""
    return Sandbox([SandboxPortal(name="default", webhooks={(1, "sandboxsecret")}, rate=1000.0, burst=1000)])


@pytest.fixture
async def portal(sandbox: Sandbox) -> AsyncIterator[SandboxHandle]:
    """The sandbox, listening on a free loopback port."""
    async with running_sandbox(sandbox, host="127.0.0.1", port=0) as handle:
        yield handle


@pytest.fixture(autouse=True)
def reset_structlog() -> Iterator[None]:
    """Every test starts with structlog's defaults (tests that configure it leave no trace)."""
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()
    yield
    structlog.reset_defaults()
