"""The overlay (``arq_overlay.py``) really puts callq's worker and a private Redis under arq's tests.

Checked on a small tree laid out like arq's sdist (its conftest imports ``RedisContainer`` and
``Worker`` the way arq's does), run exactly as ``run.py`` runs arq's: no download, a few seconds.
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.arq_suite.run import pytest_invocation

PYPROJECT = """
[tool.pytest.ini_options]
testpaths = 'tests'
filterwarnings = ['error']
asyncio_mode = 'auto'
timeout = 10
"""

CONFTEST = """
import pytest
from testcontainers.redis import RedisContainer

from arq.connections import ArqRedis
from arq.worker import Worker


@pytest.fixture(scope='session')
def redis_container():
    with RedisContainer('redis:latest') as redis:
        yield redis


@pytest.fixture
async def arq_redis(redis_container):
    port = redis_container.get_exposed_port(redis_container.port)
    redis_ = ArqRedis(host=redis_container.get_container_host_ip(), port=port)
    await redis_.flushall()
    yield redis_
    await redis_.close(close_connection_pool=True)


@pytest.fixture
def loop(event_loop):
    return event_loop


@pytest.fixture
def worker(arq_redis):
    return lambda **kwargs: Worker(redis_pool=arq_redis, burst=True, poll_delay=0, handle_signals=False, **kwargs)
"""

PROBE = """
import json
import os

import arq
from arq import Worker
from arq.worker import func


async def add(ctx, a, b):
    return a + b


async def test_probe(arq_redis, worker, loop):
    job = await arq_redis.enqueue_job('add', 1, 2)
    built = worker(functions=[func(add, name='add')])
    await built.main()
    assert await job.result(poll_delay=0) == 3
    kind = type(built)
    with open(os.environ['PROBE_OUT'], 'w') as out:
        json.dump({'worker': f'{kind.__module__}.{kind.__qualname__}', 'same': Worker is arq.worker.Worker,
                   'port': arq_redis.connection_pool.connection_kwargs['port']}, out)
"""

BINDS_ARQS_OWN = """
from schemas.jobqueue.worker import BatchClaimWorker

Worker = BatchClaimWorker.__mro__[1]


def test_nothing():
    pass
"""


def _arq_like_tree(root: Path, **tests: str) -> Path:
    (root / "tests").mkdir(parents=True)
    (root / "pyproject.toml").write_text(PYPROJECT)
    (root / "tests" / "__init__.py").write_text("")
    (root / "tests" / "conftest.py").write_text(textwrap.dedent(CONFTEST))
    for name, source in tests.items():
        (root / "tests" / f"{name}.py").write_text(textwrap.dedent(source))
    return root


def _run(root: Path, worker: str, out: Path) -> subprocess.CompletedProcess[str]:
    command, env = pytest_invocation(worker)
    env["PROBE_OUT"] = str(out)
    return subprocess.run(
        command, check=False, cwd=root, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("worker", "expected"),
    [("batched", "schemas.jobqueue.worker.BatchClaimWorker"), ("arq", "arq.worker.Worker")],
)
async def test_arqs_tests_build_the_chosen_worker_on_a_private_redis(
    tmp_path: Path, redis: Redis, prefix: str, worker: str, expected: str
) -> None:
    """Under the overlay, arq's ``Worker`` (both names) is callq's by default, arq's with ``--worker arq``,
    and arq's ``flushall`` reaches a private redis-server, never the shared Redis."""
    await redis.set(f"{prefix}:kept", "1")
    out = tmp_path / "probe.json"
    result = _run(_arq_like_tree(tmp_path / "arq", test_probe=PROBE), worker, out)
    assert result.returncode == 0, result.stdout + result.stderr
    probe = json.loads(out.read_text())
    assert probe["worker"] == expected
    assert probe["same"] is True
    assert probe["port"] != redis.connection_pool.connection_kwargs.get("port", 6379)
    assert await redis.get(f"{prefix}:kept") == b"1"
    assert f"Worker = {expected}" in result.stdout  # the report header says which


def test_a_test_module_holding_another_worker_stops_the_run(tmp_path: Path) -> None:
    """A module that bound a ``Worker`` other than the chosen one (imported before the swap) fails the run."""
    root = _arq_like_tree(tmp_path / "arq", test_probe=PROBE, test_stale=BINDS_ARQS_OWN)
    result = _run(root, "batched", tmp_path / "probe.json")
    assert result.returncode == pytest.ExitCode.USAGE_ERROR, result.stdout + result.stderr
    assert "tests.test_stale" in result.stderr
    assert not (tmp_path / "probe.json").exists()  # nothing ran
