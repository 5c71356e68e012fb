"""A pytest plugin that runs arq's own tests against callq's worker (``-p arq_overlay``, from ``run.py``).

arq's tests are used as they are in the sdist of the installed arq; everything callq changes about
how they run is here:

- **The worker.** ``arq.worker.Worker`` and ``arq.Worker`` become
  :class:`schemas.jobqueue.worker.BatchClaimWorker` as this plugin loads, before arq's conftest and test
  modules import the name (``CALLQ_ARQ_SUITE_WORKER=arq`` keeps arq's own: the baseline). arq's
  ``create_worker`` and ``run_worker`` (its CLI) look the name up in ``arq.worker``, so they build
  ours too. After collection, every module that bound ``Worker`` must hold the chosen class, or the
  run stops.
- **Redis.** arq's fixtures (``redis_container``, then ``test_redis_host`` and ``test_redis_port``)
  start a Docker container through testcontainers' ``RedisContainer``. A stand-in module
  ``testcontainers.redis`` gives them a private ``redis-server`` on a free port instead
  (:class:`ops.redis_server.RedisServer`): arq's tests ``flushall``, which must never reach a
  shared Redis.
- **pytest-asyncio 1.x** has no ``event_loop`` fixture, which arq's ``loop`` fixture asks for: the
  loop of the test's own runner is given under that name.
- **Warnings.** arq's settings make every warning an error; the ones callq's own suite lets through
  (its pyproject.toml) pass here too: redis-py's deprecated ``close()``, which arq calls, and
  sockets left to the garbage collector (reported, not failing whatever test runs then).

It must not import callq's ``tests`` package: arq's tests are a package of that name too.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import types
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import arq
import arq.worker
import pytest
import pytest_asyncio

from ops.redis_server import RedisServer
from schemas.jobqueue.worker import BatchClaimWorker

WORKER_ENV = "CALLQ_ARQ_SUITE_WORKER"
"""``batched`` (the default): arq's tests run on BatchClaimWorker; ``arq``: on arq's own Worker."""

ARQ_WORKER: type[arq.worker.Worker] = arq.worker.Worker
CHOSEN: type[arq.worker.Worker] = ARQ_WORKER if os.environ.get(WORKER_ENV) == "arq" else BatchClaimWorker

WARNINGS_LET_THROUGH = (
    "ignore:Call to deprecated close:DeprecationWarning",
    "default::ResourceWarning",
    "default::pytest.PytestUnraisableExceptionWarning",
)


class RedisContainer:
    """testcontainers' ``RedisContainer`` as arq's fixtures use it, served by a private redis-server.

    Args:
        image: the Docker image arq asks for (``redis:<version>``); the local redis-server is used.
    """

    port = 6379
    """The port inside the container; :meth:`get_exposed_port` maps it to the server's."""

    def __init__(self, image: str, **_: Any) -> None:
        self.image = image
        self._dir = tempfile.TemporaryDirectory(prefix="arq-suite-redis-")
        self._server = RedisServer(Path(self._dir.name))

    def __enter__(self) -> Self:
        self._server.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.stop()
        self._dir.cleanup()

    def get_container_host_ip(self) -> str:
        return "127.0.0.1"

    def get_exposed_port(self, port: int) -> int:
        return self._server.port


def _install() -> None:
    """Swap the worker class and the testcontainers module, before arq's tests import either."""
    arq.worker.Worker = CHOSEN  # type: ignore[misc]
    arq.Worker = CHOSEN  # type: ignore[misc]
    package = types.ModuleType("testcontainers")
    module = types.ModuleType("testcontainers.redis")
    module.RedisContainer = RedisContainer  # type: ignore[attr-defined]
    package.redis = module  # type: ignore[attr-defined]
    sys.modules["testcontainers"] = package
    sys.modules["testcontainers.redis"] = module


_install()


@pytest_asyncio.fixture(loop_scope="function")
async def event_loop() -> asyncio.AbstractEventLoop:
    """The loop the test's async fixtures run in (pytest-asyncio < 1.0 had this fixture)."""
    return asyncio.get_running_loop()


def pytest_configure(config: pytest.Config) -> None:
    """Let through the warnings callq's own suite lets through; refuse an arq that is not the installed one."""
    for line in WARNINGS_LET_THROUGH:
        config.addinivalue_line("filterwarnings", line)
    if Path(arq.__file__).resolve().is_relative_to(config.rootpath.resolve()):
        raise pytest.UsageError(f"arq imported from the sdist ({arq.__file__}), not the installed one")


def pytest_report_header(config: pytest.Config) -> str:
    """Say which worker and which Redis arq's tests run on."""
    return (
        f"callq overlay: Worker = {CHOSEN.__module__}.{CHOSEN.__qualname__}, Redis = a private redis-server"
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop unless every module of arq's tests that bound ``Worker`` holds the chosen class."""
    modules = {item.module for item in session.items if isinstance(item, pytest.Function)}
    modules.add(sys.modules.get("tests.conftest"))  # arq's conftest, whose ``worker`` fixture builds them
    bound = {module.__name__: module.Worker for module in modules if hasattr(module, "Worker")}
    wrong = sorted(name for name, cls in bound.items() if cls is not CHOSEN)
    if not bound or wrong or arq.worker.Worker is not CHOSEN or arq.Worker is not CHOSEN:
        raise pytest.UsageError(f"arq's tests do not all use {CHOSEN.__qualname__}: {wrong or 'none bound'}")
