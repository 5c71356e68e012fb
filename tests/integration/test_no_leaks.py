"""Nothing callq prints, logs or stores for others holds a secret or a full phone number (issue 11).

Secrets and numbers are planted everywhere an attacker or an unlucky ops team could plant them —
a Redis password, webhook codes, an OAuth client secret and tokens, an API token; numbers in jobs,
as field names and portal names, echoed back by the portal in its error descriptions — and then
everything callq wrote is searched for them in every spelling: the log of a worker process at
DEBUG, stdout and stderr of every CLI command, `callq serve`'s log and answers, both /metrics,
the outcome stream, the records and the halt reasons in Redis. Real processes, real paths.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from redis.asyncio import Redis

from ops.redis_server import RedisServer, free_port
from ops.sandbox import Fault, Sandbox, SandboxHandle, SandboxPortal, running_sandbox
from producers.stream import entry_job_id
from schemas.store.keys import Keys
from tests.support.helpers import TEXT, wait_for, wait_outcomes
from tests.support.leaks import (
    API_TOKEN,
    REDIS_PASSWORD,
    Written,
    job,
    raw_request,
    redis_texts,
)
from tests.support.processes import WorkerProcess, callq_env, serve_process, write_config

WEBHOOK_CODE = "wHk5ecretC0de77"
DEAD_CODE = "d3adWebh00kC0de"
CLIENT_SECRET = "0authCl1entS3cret"
SECRETS = {REDIS_PASSWORD, WEBHOOK_CODE, DEAD_CODE, API_TOKEN, CLIENT_SECRET}

ECHOED = ["+79111234567", "+79112345671", "+79113456712", "+79114567123", "+79115671234", "+79116712345"]
GONE, OAUTH, HALT = "+79117123456", "+79118234567", "+79123456789"
AS_FIELD, AS_PORTAL, AS_ENTRY_FIELD = "+79119345678", "+79121234567", "+79122345678"
CLI, CLI_NATIONAL, CLI_PORTAL, CLI_REJECTED = "+79124567890", "+79125678901", "+79126789012", "+79127890123"
HTTP, HTTP_FIELD, HTTP_PORTAL, HTTP_PATH = "+79128901234", "+79129012345", "+79131234567", "+79132345678"
NUMBERS = {*ECHOED, GONE, OAUTH, HALT, AS_FIELD, AS_PORTAL, AS_ENTRY_FIELD}
NUMBERS |= {CLI, CLI_NATIONAL, CLI_PORTAL, CLI_REJECTED, HTTP, HTTP_FIELD, HTTP_PORTAL, HTTP_PATH}

ODD = ["+79137654321", "+79137654322", "+79137654323", "+79137654324", "+79137654325", "+79137654326"]
ODD_SPELLINGS = (  # the red team's spellings that once passed the masker: other numbers the portal echoes
    "+7\u2011913\u2011765\u201143\u201121, \uff17\uff19\uff11\uff13\uff17\uff16\uff15\uff14\uff13\uff12\uff12, "
    "id79137654323, +7_913_765_43_24, +7%20913%207654325, 8(913)7654326"
)
NUMBERS |= set(ODD)

ECHOING_FAULTS = [
    Fault.error(
        400, "ERROR_CORE", "Phone number {TO_NUMBER} is not correct (webhook {WEBHOOK}); " + ODD_SPELLINGS
    ),
    Fault.error(500, "INTERNAL_SERVER_ERROR", "Failed for {TO_NUMBER} at /rest/1/{WEBHOOK}/"),
    Fault.raw(
        502,
        "<html>Bad gateway: {TO_NUMBER} /rest/1/{WEBHOOK}/voximplant.callback.start</html>",
        executed=False,
    ),
    Fault.error(400, "STRANGE_NEW_ERROR", "{TO_NUMBER} {WEBHOOK}"),
    Fault.error(503, "QUERY_LIMIT_EXCEEDED", "Too many requests from {WEBHOOK} for {TO_NUMBER}"),
]


@pytest.mark.timeout(300)
async def test_nothing_callq_writes_holds_a_secret_or_a_full_number(prefix: str, tmp_path: Path) -> None:
    """Worker log at DEBUG, every CLI command, serve, /metrics, outcomes, records, halts: no planted value."""
    written = Written(secrets=set(SECRETS), numbers=set(NUMBERS))
    sandbox = Sandbox(
        [
            SandboxPortal(name="default", webhooks={(1, WEBHOOK_CODE)}, rate=1000.0, burst=1000),
            SandboxPortal(
                name="oauthp",
                webhooks={(2, "unusedwebhookcode")},
                oauth_clients={"app": CLIENT_SECRET},
                rate=1000.0,
                burst=1000,
            ),
        ]
    )
    with RedisServer(tmp_path, password=REDIS_PASSWORD) as server:
        redis = Redis.from_url(server.url)
        try:
            async with running_sandbox(sandbox) as handle:
                env = callq_env(
                    CALLQ_CONFIG=str(_config(tmp_path, sandbox, handle, written)),
                    CALLQ_REDIS_URL=server.url,
                    CALLQ_KEY_PREFIX=prefix,
                    CALLQ_API_TOKENS=API_TOKEN,
                )
                await _worker_cli_and_serve(written, sandbox, redis, env, prefix, tmp_path)
            for label, text in (await redis_texts(redis, prefix)).items():
                written.add(label, text)
            tokens = await redis.hgetall(f"{prefix}:oauth:app")
            written.secrets |= {tokens[b"access_token"].decode(), tokens[b"refresh_token"].decode()}
            written.secrets.add((await redis.get(Keys(prefix).secret)).decode())  # the deployment's own
        finally:
            await redis.aclose()
    leaks = written.leaks()
    assert not leaks, "\n".join(leaks)


def _config(tmp_path: Path, sandbox: Sandbox, handle: SandboxHandle, written: Written) -> Path:
    refresh_token = sandbox.issue_refresh_token("oauthp", "app")
    written.secrets.add(refresh_token)
    oauth = {
        "client_id": "app",
        "client_secret": CLIENT_SECRET,
        "refresh_token": refresh_token,
        "domain": "127.0.0.1",
        "token_url": f"{handle.base_url}/oauth/token/",
    }
    gone = f"http://127.0.0.1:{free_port()}/rest/1/{DEAD_CODE}/"  # nothing listens there
    return write_config(
        tmp_path / "callq.toml",
        {
            "default": {
                "webhook_url": handle.webhook_url("default"),
                "default_region": "RU",
                "max_attempts": 1,
            },
            "gone": {"webhook_url": gone, "default_region": "RU", "max_attempts": 1},
            "app": {"oauth": oauth, "default_region": "RU"},
        },
    )


async def _worker_cli_and_serve(
    written: Written, sandbox: Sandbox, redis: Redis, env: dict[str, str], prefix: str, tmp_path: Path
) -> None:
    keys = Keys(prefix)
    metrics_port = free_port()
    worker = WorkerProcess(
        config=Path(env["CALLQ_CONFIG"]),
        redis_url=env["CALLQ_REDIS_URL"],
        prefix=prefix,
        log_path=tmp_path / "worker.log",
        log_level="DEBUG",
        extra_args=("--concurrency", "1", "--metrics-port", str(metrics_port)),
    )
    with worker:
        # every Bitrix24 answer echoes the number and the webhook code (or the access token)
        sandbox.add_faults(ECHOING_FAULTS, portal="default")
        sandbox.add_faults(
            [Fault.error(400, "ERROR_CORE", "Token {AUTH} may not call {TO_NUMBER}")], portal="oauthp"
        )
        entries = [job(n) for n in ECHOED] + [
            job(GONE, "gone"),
            job(OAUTH, "app"),
            job(AS_PORTAL, AS_PORTAL[1:]),
        ]
        entries.append(job("+79110000001", **{"8" + AS_FIELD[2:]: "a number as a field name"}))
        for entry in entries:
            await redis.xadd(keys.intake, {"job": entry})
        await redis.xadd(keys.intake, {AS_ENTRY_FIELD[1:]: "an entry without a job field"})
        outcomes = await wait_outcomes(redis, prefix, len(entries) + 1, timeout_s=60)
        statuses = [o["status"] for o in outcomes]
        assert statuses.count("rejected") == 3 and "dead" in statuses and "succeeded" in statuses, statuses
        assert "+7911***4567" in json.dumps(outcomes), "the portal's echo reached callq, masked"
        halted = await _halt(written, sandbox, redis, keys)
        await _cli(written, sandbox, redis, env, keys, halted)
        await _serve(written, redis, env, keys, halted)
        await written.cli(["resume", "default"], env)
        dead = [m.decode() for m in await redis.zrange(keys.dead, 0, -1)]
        await written.cli(["dead", "replay", dead[0]], env)
        await written.cli(["dead", "purge"], env)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{metrics_port}/metrics") as r,
        ):
            written.add("worker /metrics", await r.text())
    log = written.add("worker log", worker.log_text())
    for event in (
        "job.attempt_failed",
        "bitrix.unrecognised_error",
        "job.rejected",
        "portal.halted",
        "debug",
    ):
        assert f'"{event}"' in log, f"{event} was logged"


async def _halt(written: Written, sandbox: Sandbox, redis: Redis, keys: Keys) -> str:
    """Bitrix24 refuses the webhook, echoing it: the portal halts with the reason stored."""
    sandbox.add_faults(
        [Fault.error(401, "NO_AUTH_FOUND", "Webhook {WEBHOOK} refused the call to {TO_NUMBER}")],
        portal="default",
    )
    entry_id = (await redis.xadd(keys.intake, {"job": job(HALT)})).decode()
    reason = await wait_for(lambda: redis.get(keys.portal_halt("default")), timeout_s=20, what="the halt")
    written.add(keys.portal_halt("default"), reason)
    return await entry_job_id(redis, keys, entry_id)


async def _cli(
    written: Written, sandbox: Sandbox, redis: Redis, env: dict[str, str], keys: Keys, halted: str
) -> None:
    """Every ops command, in both output formats, on jobs whose records hold echoed secrets."""
    cli = written.cli
    _, out, _ = await cli(["status", halted], env)
    assert "PORTAL HALTED" in out
    await cli(["status", halted, "--json"], env)
    await cli(["status", HTTP_PATH], env)
    enqueue = ["enqueue", "--portal", "default", "--line", "reg1332", "--text", TEXT, "--in", "2h"]
    code, out, _ = await cli([*enqueue, "--to", CLI], env)
    assert code == 0 and CLI not in out
    national = "8 (912) 567-89-01"  # CLI_NATIONAL as a person types it
    await cli([*enqueue, "--to", national, "--json", "--key", "lead-1"], env)
    assert (await cli([*enqueue[:1], "--portal", CLI_PORTAL, *enqueue[3:], "--to", CLI], env))[0] == 2
    assert (await cli([*enqueue[:4], "x" * 101, *enqueue[5:], "--to", CLI_REJECTED], env))[0] == 1
    await cli(["list"], env)
    await cli(["list", "--json"], env)
    await cli(["cancel", "lead-1"], env)
    await cli(["dead", "list"], env)
    await cli(["dead", "list", "--json"], env)
    dead_jobs = [m.decode() for m in await redis.zrange(keys.dead, 0, -1)]
    assert (await cli(["cancel", dead_jobs[0], "--json"], env))[0] == 1
    for dead in dead_jobs:
        await cli(["dead", "show", dead], env)
        await cli(["dead", "show", dead, "--json"], env)
    refusal = Fault.error(401, "NO_AUTH_FOUND", "Webhook {WEBHOOK} is not valid")
    sandbox.add_faults([refusal, refusal], portal="default", method="voximplant.line.get")
    assert (await cli(["check"], env))[0] == 1
    await cli(["check", "--json"], env)


async def _serve(written: Written, redis: Redis, env: dict[str, str], keys: Keys, halted: str) -> None:
    """Every answer of the HTTP API, and its log, a malformed request's included."""
    port = free_port()
    token = {"Authorization": f"Bearer {API_TOKEN}"}
    dead = (await redis.zrange(keys.dead, 0, 0))[0].decode()
    async with serve_process(port, env, log_level="DEBUG") as served, aiohttp.ClientSession() as session:
        base = served.base

        async def call(method: str, path: str, **options: Any) -> tuple[int, str]:
            async with session.request(method, base + path, **options) as resp:
                return resp.status, written.add(f"{method} {path} -> {resp.status}", await resp.text())

        valid = {
            "portal": "default",
            "from_line": "reg1332",
            "to_number": HTTP,
            "text_to_pronounce": TEXT,
            "not_before": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        }
        status, body = await call("POST", "/v1/callbacks", json=valid, headers=token)
        assert status == 202
        created = json.loads(body)["job_id"]
        text, wrong_token = {**token, "Content-Type": "text/plain"}, {"Authorization": f"Bearer {API_TOKEN}x"}
        requests: list[tuple[str, str, dict[str, Any], int]] = [
            ("POST", "", {"json": {**valid, HTTP_FIELD[1:]: 1}, "headers": token}, 422),
            ("POST", "", {"json": {**valid, "portal": HTTP_PORTAL[1:]}, "headers": token}, 422),
            ("GET", f"/{halted}", {"headers": token}, 200),
            ("GET", f"/{dead}", {"headers": token}, 200),
            ("DELETE", f"/{created}", {"headers": token}, 200),
            ("DELETE", f"/{dead}", {"headers": token}, 409),
            ("GET", f"/{HTTP_PATH}", {"headers": token}, 404),
            ("POST", "", {"json": valid}, 401),
            ("POST", "", {"json": valid, "headers": wrong_token}, 401),
            ("POST", "", {"data": b"{}", "headers": text}, 415),
            ("POST", "", {"json": {"pad": " " * 70_000}, "headers": token}, 413),
        ]
        for method, path, options, expected in requests:
            assert (await call(method, f"/v1/callbacks{path}", **options))[0] == expected, (method, path)
        assert "portal_halted" in written.texts[f"GET /v1/callbacks/{halted} -> 200"]
        await call("GET", "/metrics")
        # a control character in the header: the parser refuses the raw header line, token and all
        malformed = (
            b"POST /v1/callbacks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
            + API_TOKEN.encode()
            + b"\x01\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        )
        answer = written.add("a header with a control character", raw_request(port, malformed))
        assert " 400 " in answer.partition("\r\n")[0]
    written.add("callq serve (stdout)", served.out)
    written.add("callq serve (stderr)", served.err)
    assert "http.bad_request" in written.texts["callq serve (stderr)"], "the bad request was logged"
