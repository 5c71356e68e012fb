"""``callq check`` against the sandbox: credentials, configured lines and voices."""

from __future__ import annotations

import json
from pathlib import Path

from ops.sandbox import SandboxHandle
from tests.support.processes import callq_env, run_callq, write_config


async def check(config: Path, redis_url: str, prefix: str) -> tuple[int, list[dict[str, object]]]:
    """Run `callq check --json` with only this config file, on this test's prefix; (exit code, rows)."""
    env = callq_env(CALLQ_CONFIG=str(config), CALLQ_REDIS_URL=redis_url, CALLQ_KEY_PREFIX=prefix)
    code, out, _err = await run_callq(["check", "--json"], env)
    return code, json.loads(out)


async def test_a_good_portal_passes(
    portal: SandboxHandle, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    """Working credentials, existing lines and an offered voice: exit 0, every row ok."""
    config = write_config(
        tmp_path / "callq.toml",
        {
            "default": {
                "webhook_url": portal.webhook_url("default"),
                "lines": {"reg1332": {"voice": "usenglishfemale"}, "reg1333": {"min_interval": 5}},
            }
        },
    )
    code, rows = await check(config, redis_url, prefix)
    assert code == 0, rows
    assert {row["check"] for row in rows} >= {
        "credentials",
        "scope call",
        "scope telephony",
        "line reg1332",
        "line reg1333",
        "voice usenglishfemale",
    }
    assert all(row["ok"] for row in rows)
    assert "sandboxsecret" not in json.dumps(rows), "the webhook code is never printed"


async def test_a_missing_line_and_wrong_credentials_fail(
    portal: SandboxHandle, tmp_path: Path, redis_url: str, prefix: str
) -> None:
    """A line that is not on the portal and a portal with a wrong webhook code: exit 1, each named."""
    config = write_config(
        tmp_path / "callq.toml",
        {
            "good": {"webhook_url": portal.webhook_url("default"), "lines": {"reg9999": {"min_interval": 1}}},
            "bad": {"webhook_url": portal.base_url + "/rest/1/wrongcode/"},
        },
    )
    code, rows = await check(config, redis_url, prefix)
    assert code == 1
    failed = {(row["portal"], row["check"]) for row in rows if not row["ok"]}
    assert failed == {("good", "line reg9999"), ("bad", "credentials")}
    (bad,) = [row for row in rows if row["portal"] == "bad" and not row["ok"]]
    assert "NO_AUTH_FOUND" in str(bad["detail"])
