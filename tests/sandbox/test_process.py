"""`callq sandbox` as a separate OS process."""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import aiohttp
import pytest

from ops.sandbox.cli import parse_portals
from tests.sandbox import CALLBACK_PARAMS, post_json

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
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
        cwd=REPO_ROOT,
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


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        ([], [("default", {(1, "sandboxsecret")}, 2.0, 50)]),
        (["a:1:x", "a:2:y"], [("a", {(1, "x"), (2, "y")}, 2.0, 50)]),
        (["a:1:x:5:250", "b:3:z"], [("a", {(1, "x")}, 5.0, 250), ("b", {(3, "z")}, 2.0, 50)]),
    ],
)
def test_parse_portals(
    specs: list[str], expected: list[tuple[str, set[tuple[int, str]], float, int]]
) -> None:
    """`--portal NAME:USER_ID:CODE[:RATE:BURST]` options build portals; a repeated name adds a webhook."""
    portals = parse_portals(specs, rate=2.0, burst=50)
    assert [(p.name, p.webhooks, p.rate, p.burst) for p in portals] == expected


@pytest.mark.parametrize("spec", ["a:1", "a:x:code", "a:1:code:5", ":1:code"])
def test_parse_portals_rejects_malformed_specs(spec: str) -> None:
    """A malformed --portal value is an error."""
    with pytest.raises(ValueError):
        parse_portals([spec], rate=2.0, burst=50)
