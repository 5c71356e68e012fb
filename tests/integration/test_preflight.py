"""`callq check`, `callq lines` and `callq voices` against the sandbox, as ops run them (processes)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from redis.asyncio import Redis

from ops.sandbox import Sandbox, SandboxHandle, SandboxPortal, running_sandbox
from schemas.store.keys import Keys
from schemas.store.voices import offered_voices
from tests.support.processes import run_callq, write_config

CLIENT_ID, CLIENT_SECRET = "local.app.1", "appsecret-xyz"


def callq_env(config: Path, redis_url: str, prefix: str) -> dict[str, str]:
    """The environment of a `callq` process with only this config file, on this test's prefix."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLQ_")}
    env.update(CALLQ_CONFIG=str(config), CALLQ_REDIS_URL=redis_url, CALLQ_KEY_PREFIX=prefix)
    return env


async def check(
    config: Path, redis_url: str, prefix: str
) -> tuple[int, dict[tuple[str, str], dict[str, Any]]]:
    """`callq check --json`: its exit code and its rows by (portal, check)."""
    code, out, err = await run_callq(["check", "--json"], callq_env(config, redis_url, prefix))
    assert out, err
    return code, {(row["portal"], row["check"]): row for row in json.loads(out)}


def oauth_portal(sandbox: Sandbox, handle: SandboxHandle, **fields: Any) -> dict[str, Any]:
    """The config of an OAuth portal installed on the sandbox's portal ``acme``."""
    oauth = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "refresh_token": sandbox.issue_refresh_token("acme", CLIENT_ID),
        "domain": handle.base_url.removeprefix("http://"),
        "token_url": f"{handle.base_url}/oauth/token/",
    }
    return {"oauth": oauth, **fields}


def acme(**switches: Any) -> Sandbox:
    """A sandbox portal ``acme`` with an OAuth app and the given switches."""
    portal = SandboxPortal(
        name="acme", webhooks={(1, "acmesecret")}, oauth_clients={CLIENT_ID: CLIENT_SECRET}
    )
    return Sandbox([portal.with_switches(switches)])


async def test_an_oauth_portal_passes(tmp_path: Path, redis_url: str, prefix: str) -> None:
    """An OAuth portal with both scopes, its lines and an offered voice: every row ok, one per fact."""
    sandbox = acme()
    async with running_sandbox(sandbox) as handle:
        lines = {"reg1332": {"voice": "usenglishfemale"}, "reg1333": {"min_interval": 5}}
        config = write_config(tmp_path / "callq.toml", {"acme": oauth_portal(sandbox, handle, lines=lines)})
        code, rows = await check(config, redis_url, prefix)
    assert code == 0, rows
    assert {check for portal, check in rows if portal == "acme"} == {
        "address",
        "credentials",
        "scope call",
        "scope telephony",
        "lines (voximplant.line.get)",
        "line reg1332",
        "line reg1333",
        "voices (voximplant.tts.voices.get)",
        "voice usenglishfemale",
        "halt",
        "call end handler (event.get)",
    }
    assert rows[("acme", "credentials")]["detail"] == "the OAuth token works (scope answers)"
    assert rows[("acme", "line reg1332")]["detail"] == "Sandbox line 1"
    assert [r.status for r in sandbox.token_requests()] == [200], "one refresh, through the shared store"
    assert not sandbox.calls(method="voximplant.callback.start"), "the check places no call"


async def test_an_oauth_portal_fails_with_a_precise_row_for_each_problem(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    """No `call` scope, a line not on the portal, a voice not offered: exit 1, those three rows fail, each
    saying what is wrong; the rest pass."""
    sandbox = acme(scopes=["telephony"])
    async with running_sandbox(sandbox) as handle:
        lines = {"reg1332": {"voice": "ruinternalfemale"}, "reg9999": {"min_interval": 5}}
        config = write_config(tmp_path / "callq.toml", {"acme": oauth_portal(sandbox, handle, lines=lines)})
        code, rows = await check(config, redis_url, prefix)
    assert code == 1
    failed = {key: row["detail"] for key, row in rows.items() if not row["ok"]}
    assert set(failed) == {
        ("acme", "scope call"),
        ("acme", "line reg9999"),
        ("acme", "voice ruinternalfemale"),
    }
    assert failed[("acme", "scope call")] == "not granted: add it to the OAuth token (granted: telephony)"
    assert failed[("acme", "line reg9999")] == "not on the portal (`callq lines acme` lists them)"
    assert failed[("acme", "voice ruinternalfemale")] == "not on the portal (`callq voices acme` lists them)"


async def test_a_webhook_without_a_permission_or_halted_fails_those_rows(
    tmp_path: Path, redis_url: str, prefix: str, redis: Redis
) -> None:
    """A webhook whose user may not list lines: the lines row says why and each line is 'not verified';
    a portal halted by a worker fails the halt row with `callq resume`; a wrong webhook fails credentials."""
    sandbox = acme(permissions=["outgoing_call"])
    async with running_sandbox(sandbox) as handle:
        config = write_config(
            tmp_path / "callq.toml",
            {
                "acme": {"webhook_url": f"{handle.base_url}/rest/1/acmesecret/", "lines": {"reg1332": {}}},
                "wrong": {"webhook_url": f"{handle.base_url}/rest/1/wrongsecret/"},
            },
        )
        halt = {"code": "ACCESS_DENIED", "description": "Access denied", "since": "2026-03-02T12:00:00+00:00"}
        await redis.set(Keys(prefix).portal_halt("acme"), json.dumps(halt), px=60_000)
        code, rows = await check(config, redis_url, prefix)
    assert code == 1
    failed = {key: row["detail"] for key, row in rows.items() if not row["ok"]}
    assert set(failed) == {
        ("acme", "lines (voximplant.line.get)"),
        ("acme", "line reg1332"),
        ("acme", "halt"),
        ("wrong", "credentials"),
    }
    assert (
        "ACCESS_DENIED (HTTP 403): Access denied!: the user lacks the permission"
        in failed[("acme", "line reg1332")]
    )
    assert failed[("acme", "line reg1332")].startswith("not verified: ")
    assert "callq resume acme" in failed[("acme", "halt")]
    assert "NO_AUTH_FOUND" in failed[("wrong", "credentials")] and "wrongsecret" not in json.dumps(
        list(rows.values())
    )


async def test_lines_and_voices_list_what_the_portal_offers(
    tmp_path: Path, redis_url: str, prefix: str, redis: Redis
) -> None:
    """`callq lines` and `callq voices` print a table or JSON; `voices` stores the list admission checks;
    an unknown portal exits 2, one that refuses exits 1 naming the refusal."""
    sandbox = acme(voices={"usenglishfemale": "American English (Female) (Default)", "x1": "Other"})
    async with running_sandbox(sandbox) as handle:
        portals = {"acme": {"webhook_url": f"{handle.base_url}/rest/1/acmesecret/"}}
        env = callq_env(write_config(tmp_path / "callq.toml", portals), redis_url, prefix)
        lines = await run_callq(["lines", "acme"], env)
        lines_json = await run_callq(["lines", "--json"], env)
        assert await offered_voices(redis, Keys(prefix), "acme") is None
        voices_json = await run_callq(["voices", "acme", "--json"], env)
        unknown = await run_callq(["voices", "beta"], env)
        sandbox.set_switches("acme", {"scopes": ["call"]})
        refused = await run_callq(["voices"], env)
    assert lines[0] == 0 and lines[1].splitlines() == [
        "PORTAL  LINE     NAME",
        "acme    reg1332  Sandbox line 1",
        "acme    reg1333  Sandbox line 2",
    ]
    assert json.loads(lines_json[1]) == [
        {"portal": "acme", "lines": {"reg1332": "Sandbox line 1", "reg1333": "Sandbox line 2"}}
    ]
    assert voices_json[0] == 0 and json.loads(voices_json[1])[0]["voices"]["x1"] == "Other"
    assert await offered_voices(redis, Keys(prefix), "acme") == frozenset({"usenglishfemale", "x1"})
    assert unknown[0] == 2 and 'unknown portal "beta"' in unknown[2]
    assert (
        refused[0] == 1
        and "portal acme: insufficient_scope" in refused[2]
        and "scopes call and telephony" in refused[2]
    )


async def test_events_bind_binds_an_oauth_portal_and_check_shows_it(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    """An OAuth portal expecting pushes (event_token set) fails the handler row until `callq events bind`
    binds OnVoximplantCallEnd through event.bind; then `callq check` shows it bound."""
    sandbox = acme()
    async with running_sandbox(sandbox) as handle:
        portal = oauth_portal(sandbox, handle, calls={"event_token": "sandbox-app-token-acme"})
        config = write_config(tmp_path / "callq.toml", {"acme": portal})
        env = callq_env(config, redis_url, prefix)
        code, rows = await check(config, redis_url, prefix)
        assert code == 1
        assert rows[("acme", "call end handler (event.get)")]["detail"].startswith(
            "not bound: `callq events bind"
        )
        bound = await run_callq(["events", "bind", "acme", "--url", "https://callq.example.com/"], env)
        assert bound[0] == 0, bound
        assert "ONVOXIMPLANTCALLEND bound to https://callq.example.com/v1/bitrix/events/acme" in bound[1]
        code, rows = await check(config, redis_url, prefix)
        assert code == 0, rows
        row = rows[("acme", "call end handler (event.get)")]
        assert row["detail"] == "bound: https://callq.example.com/v1/bitrix/events/acme"
        assert [(h.event, h.url) for h in sandbox.player.handlers["acme"]] == [
            ("ONVOXIMPLANTCALLEND", "https://callq.example.com/v1/bitrix/events/acme")
        ]


async def test_events_bind_prints_what_to_paste_for_a_webhook_portal(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    """A webhook portal cannot bind through the REST API: the command prints the handler URL and event to
    paste and where its application_token goes, and sends no event.bind."""
    sandbox = acme()
    async with running_sandbox(sandbox) as handle:
        portals = {"acme": {"webhook_url": f"{handle.base_url}/rest/1/acmesecret/"}}
        env = callq_env(write_config(tmp_path / "callq.toml", portals), redis_url, prefix)
        code, out, err = await run_callq(["events", "bind", "--url", "https://callq.example.com"], env)
        as_json = await run_callq(["events", "bind", "--url", "https://callq.example.com", "--json"], env)
        unknown = await run_callq(["events", "bind", "nope", "--url", "https://callq.example.com"], env)
    assert code == 0, err
    assert "handler URL: https://callq.example.com/v1/bitrix/events/acme" in out
    assert "ONVOXIMPLANTCALLEND" in out and "CALLQ_PORTAL_ACME_EVENT_TOKEN" in out
    assert json.loads(as_json[1])[0]["status"] == "paste"
    assert unknown[0] == 2
    assert not sandbox.calls(method="event.bind")
    assert "acmesecret" not in out
