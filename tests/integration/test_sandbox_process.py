"""`callq sandbox` as a separate OS process."""

from __future__ import annotations

import asyncio
import signal
import sys

import aiohttp

from tests.support.paths import ROOT
from tests.support.sandbox import CALLBACK_PARAMS, post_json


async def test_module_prints_its_url_serves_and_exits_on_sigterm() -> None:
    """The process prints its SANDBOX_URL line, then each portal's webhook URL, answers a webhook call and
    exits 0 on SIGTERM."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "ops.cli",
        "sandbox",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--portal",
        "default:1:sandboxsecret",
        "--portal",
        "acme:2:acmesecret:5:250",
        "--rate",
        "2",
        "--burst",
        "50",
        "--print-url",
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=10)).decode()
        assert line.startswith("SANDBOX_URL=http://127.0.0.1:"), line
        base_url = line.strip().removeprefix("SANDBOX_URL=")
        async with aiohttp.ClientSession() as session:
            url = f"{base_url}/rest/1/sandboxsecret/voximplant.callback.start"
            status, body = await post_json(session, url, CALLBACK_PARAMS)
            assert (status, body["result"]["RESULT"]) == (200, True)
            status, _ = await post_json(session, f"{base_url}/rest/2/acmesecret/voximplant.line.get")
            assert status == 200
        process.send_signal(signal.SIGTERM)
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()
    assert stdout.decode().splitlines() == [
        f"sandbox portal 'default' listening; use CALLQ_WEBHOOK_URL={base_url}/rest/1/sandboxsecret/ CALLQ_TIMEZONE=UTC",
        f"sandbox portal 'acme' listening; use CALLQ_WEBHOOK_URL={base_url}/rest/2/acmesecret/ CALLQ_TIMEZONE=UTC",
    ]
    logs = stderr.decode()
    assert "sandbox.listening" in logs
    assert "sandboxsecret" not in logs and "79111234567" not in logs
