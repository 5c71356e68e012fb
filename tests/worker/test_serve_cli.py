"""`callq serve` as ops run it: a real process, a bearer token, /metrics, a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
from redis.asyncio import Redis

from ops.redis_server import free_port
from ops.sandbox import SandboxHandle
from tests.helpers import read_outcomes, wait_for


async def test_serve_accepts_a_job_exposes_metrics_and_stops(
    redis_url: str, prefix: str, redis: Redis, portal: SandboxHandle, tmp_path: Path
) -> None:
    """POST with the token is 202 and stored; without it 401; /metrics answers; SIGTERM exits 0."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQ_")}
    env.update(CALLQ_REDIS_URL=redis_url, CALLQ_KEY_PREFIX=prefix, CALLQ_WEBHOOK_URL=portal.webhook_url("default"),
               CALLQ_API_TOKENS="s3cret-token-0123456789")  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "worker.cli", "--log-format", "json", "serve", "--port", str(port),
        env=env, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:

            async def up() -> bool:
                try:
                    async with session.get(f"{base}/healthz") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await wait_for(up, timeout_s=15, what="callq serve to listen")
            job = {"from_line": "reg1332", "to_number": "+79111234567", "text_to_pronounce": "Hi",
                   "not_before": "2030-01-01T10:00:00Z"}  # fmt: skip
            async with session.post(f"{base}/v1/callbacks", json=job) as resp:
                assert resp.status == 401
            headers = {"Authorization": "Bearer s3cret-token-0123456789"}
            async with session.post(f"{base}/v1/callbacks", json=job, headers=headers) as resp:
                assert resp.status == 202
                created = await resp.json()
            async with session.get(f"{base}/v1/callbacks/{created['job_id']}", headers=headers) as resp:
                assert (await resp.json())["status"] == "scheduled"
            async with session.get(f"{base}/metrics") as resp:
                assert resp.status == 200
                assert "callq_queue_depth" in await resp.text()
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(proc.communicate(), timeout=15)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert "s3cret-token-0123456789" not in err.decode()
    assert await read_outcomes(redis, prefix) == []
