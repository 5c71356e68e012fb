"""A worker frozen right after its attempt's START never sends once its lease may have lapsed.

Real ``callq worker`` processes against a private ``redis-server`` and the in-process sandbox.
Worker A reaches Redis through a proxy that, the moment the reply of A's START script passes, stops A (SIGSTOP:
what ``docker pause``, a VM freeze or a debugger does) for longer than the lease. Worker B, healthy,
ends the orphaned attempt (``OUTCOME_UNKNOWN``: nothing is known about it), and ops replay it.
When A wakes up, its request must not go out: the number is called once, by the replay.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from unittest.mock import ANY

import pytest
from redis.asyncio import Redis

from ops.redis_server import RedisServer, free_port
from ops.sandbox import Sandbox, SandboxPortal, running_sandbox
from producers.api import Producer
from producers.deadletters import DeadLetters
from tests.support.helpers import called_numbers, make_settings, sandbox_portal, wait_for, wait_outcomes
from tests.support.processes import new_worker, stop_all, until_logged, write_config

LEASE_S = 3
FREEZE_S = 14.0
"""Longer than the lease plus B's grace before it judges anyone (8 s) plus a reconcile interval."""
NUMBER = "+79111234567"


@contextlib.asynccontextmanager
async def freezing_proxy(
    upstream_port: int, *, marker: bytes, freeze_s: float, pid: list[int], froze: asyncio.Event
) -> AsyncIterator[int]:
    """A TCP proxy to Redis that, once ``marker`` passes from Redis (a reply), stops ``pid[0]``
    (SIGSTOP) for ``freeze_s`` and then lets it go on (SIGCONT). Sets ``froze`` then. Yields its port."""
    frozen = False
    tasks: set[asyncio.Task[None]] = set()

    async def thaw_later(target: int) -> None:
        try:
            await asyncio.sleep(freeze_s)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.kill(target, signal.SIGCONT)

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, watch: bool) -> None:
        nonlocal frozen
        try:
            while chunk := await reader.read(65536):
                if watch and not frozen and marker in chunk:
                    # stopped before the reply reaches it: it cannot act on it before it wakes up
                    frozen = True
                    os.kill(pid[0], signal.SIGSTOP)
                    froze.set()
                    tasks.add(asyncio.create_task(thaw_later(pid[0])))
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def serve(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", upstream_port)
        await asyncio.gather(
            pipe(client_reader, server_writer, watch=False),
            pipe(server_reader, client_writer, watch=True),
        )

    port = free_port()
    server = await asyncio.start_server(serve, "127.0.0.1", port)
    try:
        yield port
    finally:
        server.close()
        for task in tasks:
            task.cancel()  # never leave a process stopped
            with contextlib.suppress(asyncio.CancelledError):
                await task


@pytest.mark.timeout(120)
async def test_a_worker_frozen_after_start_never_calls_after_its_attempt_was_judged(
    prefix: str, tmp_path: Path
) -> None:
    """A frozen 14 s after START (lease 3 s): B ends the attempt unknown, the replay calls once, A sends nothing."""
    sandbox = Sandbox([SandboxPortal(name="default", webhooks={(1, "code")}, rate=1000.0, burst=1000)])
    with RedisServer(tmp_path) as server:
        redis = Redis.from_url(server.url)
        async with running_sandbox(sandbox) as portal:
            url = portal.webhook_url("default")
            settings = make_settings(server.url, prefix, {"default": sandbox_portal(url)})
            config = write_config(tmp_path / "callq.toml", {"default": {"webhook_url": url}})
            pid: list[int] = []
            froze = asyncio.Event()
            proxy = freezing_proxy(
                server.port, marker=b"\r\nstarted\r\n", freeze_s=FREEZE_S, pid=pid, froze=froze
            )
            async with proxy as port:
                a = new_worker(
                    tmp_path, config, f"redis://127.0.0.1:{port}/0", prefix, "a", "--lease", str(LEASE_S)
                )
                b = new_worker(tmp_path, config, server.url, prefix, "b", "--lease", str(LEASE_S))
                try:
                    a.start()
                    assert a.process is not None
                    pid.append(a.process.pid)
                    await until_logged(a, "worker.started")
                    producer = Producer(redis, settings=settings)
                    submitted = await producer.enqueue(
                        from_line="reg1332", to_number=NUMBER, text_to_pronounce="Callback request"
                    )
                    await asyncio.wait_for(froze.wait(), timeout=20)  # A is stopped right after START
                    b.start()
                    found = await wait_outcomes(redis, prefix, 1, timeout_s=40)
                    assert found[0]["status"] == "dead"
                    assert found[0]["error"] == {"code": "OUTCOME_UNKNOWN", "description": ANY}
                    assert sandbox.calls() == [], "A was frozen before its request left"
                    replayed = await DeadLetters(producer).replay(submitted.job_id)
                    assert replayed.submitted is not None, replayed.error
                    await wait_for(lambda: len(sandbox.calls()) >= 1, timeout_s=20, what="the replay's call")
                    found = await wait_outcomes(redis, prefix, 2, timeout_s=20)

                    def a_done() -> bool:  # A woke up: it held its request back, or sent it
                        return '"event": "job.lease_ran_out"' in a.log_text() or len(sandbox.calls()) >= 2

                    await wait_for(a_done, timeout_s=FREEZE_S + 20, what="A to wake up")
                finally:
                    await stop_all(a, b)  # without blocking the loop: A's way to Redis runs on it
            assert called_numbers(sandbox) == [NUMBER], "called once"
            assert found[1]["status"] == "succeeded"
            await redis.aclose()
