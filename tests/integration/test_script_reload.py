"""A Redis that restarts between redis-py's script load and its send: the pipeline is sent again.

redis-py loads a pipeline's scripts when ``execute`` begins; a restart after that (its scripts gone)
and redis-py's retry make every script answer ``NOSCRIPT``. Simulated on a private Redis by flushing
its scripts right after redis-py loads them, once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from ops.redis_server import RedisServer
from producers.api import Producer
from tests.support.helpers import make_settings, sandbox_portal


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private redis-server: its scripts are flushed."""
    (tmp_path / "redis").mkdir()
    with RedisServer(tmp_path / "redis") as running:
        yield running


@pytest.fixture
async def client(server: RedisServer) -> AsyncIterator[Redis]:
    """A client of it."""
    redis = Redis.from_url(server.url)
    yield redis
    await redis.aclose()


@pytest.fixture
async def scripts_lost_once(server: RedisServer, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[int]]:
    """After redis-py's next script load, the scripts are flushed (as by a restart); counts the loads."""
    loads: list[int] = []
    original = Pipeline.load_scripts
    other = Redis.from_url(server.url)

    async def load_then_lose(self: Pipeline) -> None:
        await original(self)  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        loads.append(1)
        if len(loads) == 1:
            await other.script_flush()

    monkeypatch.setattr(Pipeline, "load_scripts", load_then_lose)
    yield loads
    await other.aclose()


async def test_an_admission_whose_scripts_were_lost_is_sent_again(
    client: Redis, server: RedisServer, scripts_lost_once: list[int]
) -> None:
    """The batch admission's scripts answer NOSCRIPT once: the job is still admitted, once."""
    settings = make_settings(
        server.url, "reload", {"default": sandbox_portal("http://127.0.0.1:9/rest/1/x/")}
    )
    producer = Producer(client, settings=settings)
    submitted = await producer.enqueue(
        from_line="reg1332", to_number="+79111234567", text_to_pronounce="Hi", not_before=datetime.now(UTC)
    )
    record = await producer.ledger.read(submitted.job_id)
    assert record is not None and record.state == "scheduled"
    assert len(scripts_lost_once) == 2, "loaded, lost, loaded again"
