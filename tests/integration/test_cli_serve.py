"""`callq serve` as ops run it: a real process, a bearer token, /metrics, a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from redis.asyncio import Redis

from ops.redis_server import free_port
from ops.sandbox import SandboxHandle
from schemas.config.registry import ConfigRegistry
from schemas.store.keys import Keys
from schemas.wire.job import CallbackJob
from tests.support.calls import plant_followed_job
from tests.support.helpers import read_outcomes, sandbox_portal
from tests.support.processes import callq_env, run_callq, serve_process


async def test_serve_accepts_a_job_exposes_metrics_and_stops(
    redis_url: str, prefix: str, redis: Redis, portal: SandboxHandle, tmp_path: Path
) -> None:
    """POST with the token is 202 and stored; without it 401; /metrics answers; it registers its
    configuration while it runs; SIGTERM exits 0."""
    env = serve_env(redis_url, prefix, portal, CALLQ_API_TOKENS="s3cret-token-0123456789")
    async with serve_process(free_port(), env) as served, aiohttp.ClientSession() as session:
        base, proc = served.base, served.process
        job = {
            "from_line": "reg1332",
            "to_number": "+79111234567",
            "text_to_pronounce": "Hi",
            "not_before": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        }
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
        (live,) = await ConfigRegistry(redis, Keys(prefix)).live()
        assert live.role == "serve" and live.pid == proc.pid
    assert proc.returncode == 0, served.err.decode()[-2000:]
    assert "s3cret-token-0123456789" not in served.err.decode()
    assert await read_outcomes(redis, prefix) == []
    assert await ConfigRegistry(redis, Keys(prefix)).live() == [], "a clean stop leaves the registry"


def serve_env(redis_url: str, prefix: str, portal: SandboxHandle, **extra: str) -> dict[str, str]:
    """The environment of a `callq serve` process (no CALLQ_* from the outside)."""
    return callq_env(
        CALLQ_REDIS_URL=redis_url,
        CALLQ_KEY_PREFIX=prefix,
        CALLQ_WEBHOOK_URL=portal.webhook_url("default"),
        CALLQ_TIMEZONE="UTC",
        **extra,
    )


@pytest.mark.parametrize(
    ("args", "extra_env", "expected"),
    [
        ([], {}, "api_tokens: callq serve needs at least one bearer token"),
        (["--no-auth", "--host", "0.0.0.0"], {}, "host: --no-auth serves without authentication"),
        (["--no-auth", "--host", "::"], {"CALLQ_API_TOKENS": "a-token-0123456789"}, "host: --no-auth serves"),
        (["--no-auth", "--host", "10.1.2.3"], {}, "allowed only on a loopback address"),
        ([], {"CALLQ_API_TOKENS": "short1"}, "CALLQ_API_TOKENS: every token must be at least 16 characters"),
        (
            ["--public-url", "callq.example"],
            {"CALLQ_API_TOKENS": "a-token-0123456789"},
            "public-url: 'callq.example' is not http(s)://host[:port]",
        ),
    ],
    ids=[
        "no-token",
        "no-auth-wildcard",
        "no-auth-ipv6-wildcard",
        "no-auth-lan",
        "short-token",
        "bad-public-url",
    ],
)
async def test_serve_refuses_what_it_must_in_the_command_lines_terms(
    args: list[str],
    extra_env: dict[str, str],
    expected: str,
    redis_url: str,
    prefix: str,
    portal: SandboxHandle,
) -> None:
    """Each refusal is one configuration-error line naming the flag (--no-auth, not allow_no_auth=True), exit 2."""
    env = serve_env(redis_url, prefix, portal, **extra_env)
    code, out, err = await run_callq(["serve", "--port", "0", *args], env, timeout_s=20)
    assert code == 2, err
    assert err.startswith("callq: configuration error: ") and err.count("\n") == 1, err
    assert expected in err
    assert "allow_no_auth" not in err and "short1" not in err
    if "bearer token" in expected:
        assert "pass --no-auth" in err
    assert "listening" not in out


async def test_a_timeout_that_is_not_positive_is_refused_where_it_is_read(
    redis_url: str, prefix: str, portal: SandboxHandle
) -> None:
    """`--header-timeout 0` is refused by the option's own check (exit 2, naming the option)."""
    env = serve_env(redis_url, prefix, portal, CALLQ_API_TOKENS="a-token-0123456789")
    code, out, err = await run_callq(["serve", "--port", "0", "--header-timeout", "0"], env, timeout_s=20)
    assert code == 2, err
    assert "argument --header-timeout" in err and "Traceback" not in err
    assert "listening" not in out


async def test_serve_prints_the_real_bound_address(
    redis_url: str, prefix: str, portal: SandboxHandle, tmp_path: Path
) -> None:
    """`callq serve --no-auth --port 0` prints and logs the address and port it really bound, then stops on SIGTERM."""
    env = serve_env(redis_url, prefix, portal)
    args = [
        "-m",
        "ops.cli",
        "--log-format",
        "json",
        "serve",
        "--no-auth",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
    ]
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *args, env=env, cwd=tmp_path, stdout=pipe, stderr=pipe
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
        match = re.fullmatch(r"callq serve listening on http://127\.0\.0\.1:(\d+)\n", line)
        assert match is not None, line
        port = int(match.group(1))
        assert port != 0
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{port}/healthz") as resp,
        ):
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = await asyncio.wait_for(proc.communicate(), timeout=15)
    assert proc.returncode == 0
    listening = [json.loads(line) for line in err.decode().splitlines() if '"http.listening"' in line]
    assert [entry["urls"] for entry in listening] == [[f"http://127.0.0.1:{port}"]]


async def test_serve_counts_pushed_call_results_in_its_metrics(
    redis_url: str, prefix: str, redis: Redis, portal: SandboxHandle
) -> None:
    """A call's end pushed to `callq serve` is counted as a worker counts a pulled one: the call's end,
    the job's final call result (the reached ratio's terms) and its time to connect."""
    env = serve_env(
        redis_url,
        prefix,
        portal,
        CALLQ_API_TOKENS="s3cret-token-0123456789",
        CALLQ_PORTAL_DEFAULT_EVENT_TOKEN="app-token-0123456789",
    )
    job = CallbackJob(
        job_id="pushed1",
        portal="default",
        from_line="reg1332",
        to_number="+79111234567",
        text_to_pronounce="Hi",
        created_at=datetime.now(UTC).isoformat(),
    )
    await plant_followed_job(redis, prefix, sandbox_portal(portal.webhook_url("default")), job, call_id="c-1")
    form = {
        "event": "ONVOXIMPLANTCALLEND",
        "data[CALL_ID]": "c-1",
        "data[CALL_FAILED_CODE]": "200",
        "data[CALL_DURATION]": "12",
        "auth[application_token]": "app-token-0123456789",
    }
    async with serve_process(free_port(), env) as served, aiohttp.ClientSession() as session:
        async with session.post(f"{served.base}/v1/bitrix/events/default", data=form) as resp:
            assert resp.status == 200, await resp.text()
            assert (await resp.json())["call"] == "ended"
        async with session.get(f"{served.base}/metrics") as resp:
            text = await resp.text()
    labels = 'line="reg1332",portal="default",result="connected"'
    assert f"callq_call_ends_total{{{labels}}} 1.0" in text
    assert f"callq_call_results_total{{{labels}}} 1.0" in text
    assert 'callq_time_to_connect_seconds_count{line="reg1332",portal="default"} 1.0' in text
