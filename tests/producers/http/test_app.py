"""The HTTP way in, against a real Redis, the sandbox portal and a worker where a call is made."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from jsonschema import Draft202012Validator
from redis.asyncio import Redis
from referencing import Registry
from referencing.jsonschema import DRAFT202012
from structlog.testing import capture_logs

from ops.sandbox import Fault, Sandbox, SandboxHandle
from producers.http.app import NoTokensError, PublicNoAuthError, create_app, serve
from producers.http.guards import GUARD
from schemas.config import ApiToken, ConfigError, Settings
from schemas.store.keys import Keys
from tests.support.helpers import (
    make_settings,
    read_outcomes,
    running_worker,
    sandbox_portal,
    wait_for,
    wait_outcomes,
)
from tests.support.paths import ROOT

Client = TestClient[web.Request, web.Application]

TOKEN = "t0k-0123456789abcdef"
OTHER_TOKEN = "another-token-of-a-different-length"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ORIGIN = "https://shop.example"
NUMBER = "+79111234567"
JOB: dict[str, Any] = {"from_line": "reg1332", "to_number": "8 (911) 123-45-67", "text_to_pronounce": "Hello"}
OPENAPI = json.loads((ROOT / "schemas" / "openapi.json").read_text())


def later(**delta: float) -> str:
    """An RFC 3339 moment relative to now."""
    return (datetime.now(UTC) + timedelta(**delta)).isoformat()


@pytest.fixture
def settings(redis_url: str, prefix: str, portal: SandboxHandle) -> Settings:
    """Settings with the sandbox portal and two bearer tokens."""
    portals = {"default": sandbox_portal(portal.webhook_url("default"))}
    return make_settings(redis_url, prefix, portals, api_tokens=(TOKEN, OTHER_TOKEN))


@contextlib.asynccontextmanager
async def serving(app: web.Application) -> AsyncIterator[Client]:
    """A test client for ``app`` on a real loopback server."""
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
async def client(redis: Redis, settings: Settings) -> AsyncIterator[Client]:
    """The API with one allowed CORS origin."""
    async with serving(create_app(redis=redis, settings=settings, cors_origins=(ORIGIN + "/",))) as client:
        yield client


async def post_job(client: Client, job: Any = JOB, **kwargs: Any) -> tuple[int, dict[str, Any]]:
    """POST a job (a dict as JSON, else raw data) with the token; the status and JSON body."""
    kwargs.setdefault("headers", AUTH)
    kwargs["json" if isinstance(job, dict) else "data"] = job
    async with client.post("/v1/callbacks", **kwargs) as resp:
        return resp.status, await resp.json()


async def test_valid_job_is_accepted_then_called(
    client: Client, settings: Settings, redis: Redis, sandbox: Sandbox
) -> None:
    """A valid job is 202 scheduled with run_at in UTC, then the worker calls it and it succeeds."""
    async with running_worker(settings):
        async with client.post("/v1/callbacks", json=JOB, headers=AUTH) as resp:
            assert resp.status == 202
            body = await resp.json()
            assert resp.headers["Location"] == f"/v1/callbacks/{body['job_id']}"
        (outcome,) = await wait_outcomes(redis, settings.key_prefix, 1)
    assert body["status"] == "scheduled" and body["new"] is True
    assert datetime.fromisoformat(body["run_at"]).utcoffset() == timedelta(0)
    assert (outcome["job_id"], outcome["status"]) == (body["job_id"], "succeeded")
    assert [call.params["TO_NUMBER"] for call in sandbox.calls(portal="default")] == [NUMBER]


async def test_bad_number_is_422_naming_the_field_and_recorded_rejected(
    client: Client, redis: Redis, prefix: str
) -> None:
    """A number that does not parse is 422 with to_number named, and a rejected outcome is recorded."""
    status, body = await post_job(client, {**JOB, "to_number": "123", "metadata": {"lead": 1}})
    assert status == 422
    assert body["status"] == "rejected"
    assert [e["field"] for e in body["errors"]] == ["to_number"]
    (outcome,) = await read_outcomes(redis, prefix)
    assert (outcome["job_id"], outcome["status"]) == (body["job_id"], "rejected")
    assert outcome["error"]["code"] == "INVALID_JOB" and outcome["metadata"] == {"lead": 1}


DEEP_METADATA = json.loads('{"a":' * 150 + "1" + "}" * 150)
UNSTORABLE = [
    pytest.param(b"{not json", "", "not JSON", id="syntax"),
    pytest.param(b"[1, 2]", "", "an array", id="array"),
    pytest.param(b"null", "", "null", id="null"),
    pytest.param(b"\xff\xfe{}", "", "not UTF-8", id="not-utf8"),
    pytest.param(b"[" * 5000, "", "nested", id="deep"),
    pytest.param(json.dumps({**JOB, "metadata": {"a": float("nan")}}).encode(), "", "NaN", id="nan"),
    pytest.param(b'{"from_line": "x", "metadata": {"a": 1e999}}', "", "out of range", id="infinity"),
    pytest.param(b'{"from_line": "\\ud800", "to_number": "1"}', "from_line", "Unicode", id="surrogate"),
    pytest.param(b'{"from_line": "x", "metadata": {"\\udc00": 1}}', "metadata", "key", id="surrogate-key"),
    pytest.param(b'{"\\ud800": 1}', "", "field name", id="surrogate-field"),
    pytest.param(
        json.dumps({**JOB, "metadata": DEEP_METADATA}).encode(), "metadata", "nested", id="deep-meta"
    ),
    pytest.param(
        json.dumps({**JOB, "not_before": "9999-12-31T23:59:59-23:59"}).encode(),
        "not_before",
        "days ahead",
        id="year-9999",
    ),
    pytest.param(
        json.dumps({**JOB, "deadline": "0001-01-01T00:00:00+23:59"}).encode(),
        "deadline",
        "range",
        id="year-1",
    ),
]


@pytest.mark.parametrize(("raw", "field", "words"), UNSTORABLE)
async def test_input_callq_cannot_store_is_422_and_recorded(
    client: Client, redis: Redis, prefix: str, raw: bytes, field: str, words: str
) -> None:
    """Bodies that are not a storable JSON object are 422 (never 5xx) and end as rejected outcomes."""
    status, body = await post_job(client, raw, headers={**AUTH, "Content-Type": "application/json"})
    assert status == 422, body
    (error,) = body["errors"]
    assert error["field"] == field and words in error["message"], error
    (outcome,) = await read_outcomes(redis, prefix)
    assert (outcome["job_id"], outcome["status"]) == (body["job_id"], "rejected")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": "Bearer тест"},
    ],
    ids=["missing", "wrong", "basic", "empty", "prefix", "non-ascii"],
)
async def test_no_or_wrong_token_is_401_and_records_nothing(
    client: Client, redis: Redis, prefix: str, headers: dict[str, str]
) -> None:
    """Every /v1 route answers 401 with WWW-Authenticate: Bearer without a right token; nothing enters."""
    for method, path in [
        ("POST", "/v1/callbacks"),
        ("GET", "/v1/callbacks/x"),
        ("DELETE", "/v1/callbacks/x"),
    ]:
        async with client.request(method, path, json=JOB, headers=headers) as resp:
            assert resp.status == 401
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await resp.json())["error"]["code"] == "UNAUTHORIZED"
    assert await read_outcomes(redis, prefix) == []


async def test_every_configured_token_is_accepted(client: Client) -> None:
    """Each of the configured tokens works, and the scheme is case-insensitive."""
    for header in (f"Bearer {TOKEN}", f"bearer {OTHER_TOKEN}", f"Bearer  {TOKEN} "):
        status, _ = await post_job(client, headers={"Authorization": header})
        assert status == 202


async def test_body_over_the_limit_is_413(client: Client, redis: Redis, prefix: str) -> None:
    """A body over 64 KiB is 413, whether announced by Content-Length or sent chunked."""
    big = json.dumps({**JOB, "text_to_pronounce": "x" * (64 * 1024)}).encode()
    status, body = await post_job(client, big, headers={**AUTH, "Content-Type": "application/json"})
    assert (status, body["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    status, body = await post_job(client, chunks(), headers={**AUTH, "Content-Type": "application/json"})
    assert (status, body["error"]["code"]) == (413, "PAYLOAD_TOO_LARGE")
    assert await read_outcomes(redis, prefix) == []


async def test_exactly_the_limit_is_read(redis: Redis, settings: Settings) -> None:
    """A body of exactly max_body_bytes is read (and judged on its content)."""
    body = json.dumps(JOB).encode()
    app = create_app(redis=redis, settings=settings, max_body_bytes=len(body))
    headers = {**AUTH, "Content-Type": "application/json"}
    async with serving(app) as client:
        assert (await post_job(client, body, headers=headers))[0] == 202
        assert (await post_job(client, body + b" ", headers=headers))[0] == 413


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        ("text/plain", 415),
        ("application/x-www-form-urlencoded", 415),
        (None, 415),
        ("application/json; charset=latin-1", 415),
        ("application/json; charset=UTF-8", 202),
        ("Application/JSON", 202),
    ],
)
async def test_only_json_bodies_are_read(client: Client, content_type: str | None, expected: int) -> None:
    """The body must be sent as application/json (a UTF-8 charset parameter is allowed)."""
    headers = {**AUTH, "Content-Type": content_type} if content_type else AUTH
    status, body = await post_job(
        client, json.dumps(JOB).encode(), headers=headers, skip_auto_headers=["Content-Type"]
    )
    assert status == expected, body


async def test_repeat_duplicate_and_expired_answers(client: Client) -> None:
    """A known key with the same request is 200 with the first job; the same number 202 duplicate; a past
    deadline 202 expired."""
    status, first = await post_job(client, {**JOB, "idempotency_key": "lead-1"})
    assert (status, first["status"]) == (202, "scheduled")
    status, repeat = await post_job(
        client, {**JOB, "idempotency_key": "lead-1", "to_number": "+7 911 123 45 67"}
    )
    assert status == 200
    assert repeat == {**first, "new": False}
    status, duplicate = await post_job(client, JOB)
    assert (status, duplicate["status"], duplicate["duplicate_of"]) == (202, "duplicate", first["job_id"])
    assert duplicate["new"] is False and duplicate["run_at"] is None
    status, expired = await post_job(client, {**JOB, "from_line": "other", "deadline": later(hours=-1)})
    assert (status, expired["status"], expired["error"]["code"]) == (202, "expired", "DEADLINE_PASSED")


async def test_a_known_key_with_a_different_request_is_409(client: Client, redis: Redis, prefix: str) -> None:
    """The same key with another number and text is 409 IDEMPOTENCY_KEY_REUSED naming both fields (the number
    masked), recorded as a rejected outcome; the first job is unchanged."""
    keyed = {**JOB, "idempotency_key": "lead-2", "metadata": {"lead": 2}}
    _, first = await post_job(client, keyed)
    status, body = await post_job(
        client, {**keyed, "to_number": "+79110000000", "text_to_pronounce": "Other"}
    )
    assert (status, body["error"]["code"], body["status"]) == (409, "IDEMPOTENCY_KEY_REUSED", "rejected")
    assert body["existing_job_id"] == first["job_id"] and body["job_id"] != first["job_id"]
    assert [f["field"] for f in body["error"]["fields"]] == ["to_number", "text_to_pronounce"]
    assert "+7911***0000" in body["error"]["fields"][0]["message"] and "9110000000" not in json.dumps(body)
    (outcome,) = await read_outcomes(redis, prefix)
    assert (outcome["job_id"], outcome["status"]) == (body["job_id"], "rejected")
    assert (outcome["error"]["code"], outcome["existing_job_id"]) == (
        "IDEMPOTENCY_KEY_REUSED",
        first["job_id"],
    )
    async with client.get("/v1/callbacks/lead-2", headers=AUTH) as resp:
        assert (await resp.json())["job_id"] == first["job_id"]


async def test_get_by_job_id_and_by_idempotency_key(client: Client) -> None:
    """GET finds a job by its id and by its idempotency key, number masked; unknown ids are 404."""
    _, submitted = await post_job(client, {**JOB, "idempotency_key": "lead-7", "metadata": {"lead": 7}})
    for ident in (submitted["job_id"], "lead-7"):
        async with client.get(f"/v1/callbacks/{ident}", headers=AUTH) as resp:
            assert resp.status == 200
            view = await resp.json()
        assert (view["job_id"], view["status"], view["to_number"]) == (
            submitted["job_id"],
            "scheduled",
            "+7911***4567",
        )
        assert view["metadata"] == {"lead": 7} and view["run_at"] == submitted["run_at"]
    for ident in ("nope", "x" * 201, "%ED%A0%80"):
        for method in ("GET", "DELETE"):
            async with client.request(method, f"/v1/callbacks/{ident}", headers=AUTH) as resp:
                assert resp.status == 404
                assert (await resp.json())["error"]["code"] == "NOT_FOUND"


async def test_delete_cancels_a_scheduled_job_which_is_never_called(
    client: Client, settings: Settings, redis: Redis, sandbox: Sandbox
) -> None:
    """DELETE of a job due later is 200 cancelled, its arq job is gone, and a worker calls only other jobs."""
    _, scheduled = await post_job(client, {**JOB, "not_before": later(hours=1)})
    async with client.delete(f"/v1/callbacks/{scheduled['job_id']}", headers=AUTH) as resp:
        assert resp.status == 200
        view = await resp.json()
    assert (view["status"], view["outcome"]["status"]) == ("cancelled", "cancelled")
    keys = Keys(settings.key_prefix)
    assert await redis.exists(keys.jobs.job(scheduled["job_id"])) == 0
    assert await redis.zscore(keys.queue, keys.jobs.member(scheduled["job_id"])) is None
    async with running_worker(settings):
        await post_job(client, {**JOB, "to_number": "+79110000000"})
        outcomes = await wait_outcomes(redis, settings.key_prefix, 2)
    assert [o["status"] for o in outcomes] == ["cancelled", "succeeded"]
    assert [call.params["TO_NUMBER"] for call in sandbox.calls(portal="default")] == ["+79110000000"]
    async with client.delete(f"/v1/callbacks/{scheduled['job_id']}", headers=AUTH) as resp:
        assert resp.status == 409, "cancelling twice is refused: the job has ended"


async def test_delete_of_a_job_that_started_or_ended_is_409(
    client: Client, settings: Settings, sandbox: Sandbox
) -> None:
    """DELETE is 409 with the job's state for a job that is running (request in flight) or has ended."""
    _, expired = await post_job(client, {**JOB, "deadline": later(hours=-1)})
    async with client.delete(f"/v1/callbacks/{expired['job_id']}", headers=AUTH) as resp:
        body = await resp.json()
        assert (resp.status, body["error"]["code"], body["job"]["status"]) == (
            409,
            "NOT_CANCELLABLE",
            "expired",
        )
    sandbox.add_faults([Fault.hang()])
    async with running_worker(settings):
        _, running = await post_job(client)

        async def state() -> bool:
            async with client.get(f"/v1/callbacks/{running['job_id']}", headers=AUTH) as resp:
                return bool((await resp.json())["status"] == "running")

        await wait_for(state, what="the job to start")
        async with client.delete(f"/v1/callbacks/{running['job_id']}", headers=AUTH) as resp:
            body = await resp.json()
            assert (resp.status, body["job"]["status"]) == (409, "running")
            assert "running" in body["error"]["description"]


async def test_cors_preflight_and_headers_only_for_allowed_origins(client: Client) -> None:
    """An allowed origin gets a 204 preflight and Allow-Origin; other origins get 403 and no CORS headers."""
    preflight = {
        "Origin": ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    for path in ("/v1/callbacks", "/v1/callbacks/some-id"):
        async with client.options(path, headers=preflight) as resp:
            assert resp.status == 204
            assert resp.headers["Access-Control-Allow-Origin"] == ORIGIN
            assert set(resp.headers["Access-Control-Allow-Methods"].split(", ")) == {"POST", "GET", "DELETE"}
            assert resp.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
        async with client.options(path, headers={**preflight, "Origin": "https://evil.example"}) as resp:
            assert resp.status == 403
            assert (await resp.json())["error"]["code"] == "ORIGIN_NOT_ALLOWED"
            assert not any(h.startswith("Access-Control-") for h in resp.headers)
    async with client.options("/v1/callbacks/x") as resp:
        assert (resp.status, resp.headers["Allow"]) == (204, "DELETE, GET, OPTIONS")
    async with client.post("/v1/callbacks", json=JOB, headers={**AUTH, "Origin": ORIGIN}) as resp:
        assert resp.status == 202 and resp.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "Location" in resp.headers["Access-Control-Expose-Headers"]
    async with client.get("/v1/callbacks/x", headers={"Origin": ORIGIN}) as resp:
        assert resp.status == 401 and resp.headers["Access-Control-Allow-Origin"] == ORIGIN
    async with client.post(
        "/v1/callbacks", json=JOB, headers={**AUTH, "Origin": "https://evil.example"}
    ) as resp:
        assert resp.status == 202 and "Access-Control-Allow-Origin" not in resp.headers


async def test_healthz_and_readyz(client: Client, settings: Settings) -> None:
    """/healthz is 200 without a token; /readyz is 503 naming the worker until a worker runs, then 200."""
    async with client.get("/healthz") as resp:
        assert (resp.status, await resp.json()) == (200, {"status": "ok"})
    async with client.get("/readyz") as resp:
        body = await resp.json()
        assert (resp.status, body["status"], body["checks"]["redis"]) == (503, "unavailable", "ok")
        assert body["checks"]["worker"].startswith("no live worker")
    async with running_worker(settings):

        async def ready() -> dict[str, Any] | None:
            async with client.get("/readyz") as resp:
                return await resp.json() if resp.status == 200 else None

        body = await wait_for(ready, what="/readyz to answer 200")
    assert body == {"status": "ready", "checks": {"redis": "ok", "redis_writable": "ok", "worker": "ok"}}


async def test_redis_unreachable_is_503_json(settings: Settings) -> None:
    """With Redis unreachable, /v1 routes answer 503 with Retry-After and /readyz names the redis check."""
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    try:
        async with serving(create_app(redis=dead, settings=settings)) as client:
            status, body = await post_job(client)
            assert (status, body["error"]["code"]) == (503, "UNAVAILABLE")
            async with client.get("/v1/callbacks/x", headers=AUTH) as resp:
                assert resp.status == 503 and resp.headers["Retry-After"] == "5"
            async with client.get("/readyz") as resp:
                body = await resp.json()
                assert resp.status == 503 and body["checks"]["redis"].startswith("unreachable")
    finally:
        await dead.aclose()


async def test_a_custom_ready_check_replaces_the_default(redis: Redis, settings: Settings) -> None:
    """ready_check decides /readyz; one that raises makes it 503, never 500."""

    async def fine() -> dict[str, Any]:
        return {"db": "ok"}

    async def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    for check, expected in ((fine, 200), (broken, 503)):
        app = create_app(redis=redis, settings=settings, ready_check=check)
        async with serving(app) as client, client.get("/readyz") as resp:
            assert resp.status == expected, await resp.text()


async def test_no_tokens_refuses_to_start_unless_allowed(redis: Redis, settings: Settings) -> None:
    """Without api_tokens the app is not built (a configuration error) unless allow_no_auth=True."""
    open_settings = make_settings(settings.redis_url, settings.key_prefix, settings.portals)
    with pytest.raises(NoTokensError, match="api_tokens"):
        create_app(redis=redis, settings=open_settings)
    with pytest.raises(NoTokensError, match=r"pass allow_no_auth=True$"):
        await serve(redis=redis, settings=open_settings, host="127.0.0.1", port=0)
    async with serving(create_app(redis=redis, settings=open_settings, allow_no_auth=True)) as client:
        assert (await post_job(client, headers={}))[0] == 202


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "192.0.2.1", "example.com"])
async def test_no_auth_is_refused_off_loopback(redis: Redis, settings: Settings, host: str) -> None:
    """allow_no_auth on an address other machines can reach is a configuration error before binding."""
    open_settings = make_settings(settings.redis_url, settings.key_prefix, settings.portals)
    for each in (open_settings, settings):
        with pytest.raises(
            PublicNoAuthError, match=r"^host: allow_no_auth=True serves without authentication"
        ):
            await serve(redis=redis, settings=each, host=host, port=0, allow_no_auth=True)


async def test_short_tokens_are_refused_by_the_app(redis: Redis, settings: Settings) -> None:
    """Settings built in code with a token under 16 characters are refused too, naming the key only."""
    short = make_settings(
        settings.redis_url, settings.key_prefix, settings.portals, api_tokens=(TOKEN, "abc")
    )
    with pytest.raises(ConfigError, match=r"^api_tokens: every token must be at least 16") as raised:
        create_app(redis=redis, settings=short)
    assert "abc" not in str(raised.value)


async def test_serve_listens_until_stopped(redis: Redis, settings: Settings) -> None:
    """serve() binds, reports its URL with the real port, answers, and returns once stop is set."""
    stop, ready = asyncio.Event(), asyncio.Queue[Sequence[str]]()
    task = asyncio.create_task(
        serve(redis=redis, settings=settings, host="127.0.0.1", port=0, on_ready=ready.put_nowait, stop=stop)
    )
    (url,) = await asyncio.wait_for(ready.get(), 5)
    assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
    async with aiohttp.ClientSession() as session, session.get(f"{url}/healthz") as resp:
        assert resp.status == 200
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_unknown_paths_and_methods_answer_json(client: Client) -> None:
    """A path with no route is a JSON 404 and a method a route lacks a JSON 405 with Allow."""
    async with client.get("/v2/callbacks/79111234567", headers=AUTH) as resp:
        assert (resp.status, (await resp.json())["error"]["code"]) == (404, "NOT_FOUND")
    async with client.put("/v1/callbacks", headers=AUTH) as resp:
        assert (resp.status, (await resp.json())["error"]["code"]) == (405, "METHOD_NOT_ALLOWED")
        assert "POST" in resp.headers["Allow"]


async def test_requests_are_logged_without_token_or_number(client: Client) -> None:
    """One http.request line per request with method, route, status and duration; no token, no full number."""
    with capture_logs() as logs:
        _, submitted = await post_job(client, {**JOB, "idempotency_key": "k1"})
        async with client.get("/v1/callbacks/79111234567", headers=AUTH):
            pass
        async with client.get("/v2/79111234567", headers=AUTH):
            pass
        async with client.get("/v2/+7 911 123-45-67/x", headers=AUTH):
            pass
    requests = [entry for entry in logs if entry["event"] == "http.request"]
    assert [(r["method"], r["path"], r["status"]) for r in requests] == [
        ("POST", "/v1/callbacks", 202),
        ("GET", "/v1/callbacks/{id}", 404),
        ("GET", "/v2/79***67", 404),
        ("GET", "/v2/+7911***4567/x", 404),
    ]
    assert requests[0]["job_id"] == submitted["job_id"]
    assert all(isinstance(r["duration_ms"], float) for r in requests)
    text = repr(logs)
    assert TOKEN not in text and "9111234567" not in text and "123-45-67" not in text


async def test_openapi_document_is_served_as_shipped(client: Client) -> None:
    """GET /openapi.json returns schemas/openapi.json byte for byte, without a token."""
    async with client.get("/openapi.json") as resp:
        assert resp.status == 200 and resp.content_type == "application/json"
        assert json.loads(await resp.read()) == OPENAPI


# --- The OpenAPI document against the app --------------------------------------------------------

DOC_URI = "urn:callq:openapi"
REGISTRY: Registry[Any] = Registry().with_resource(DOC_URI, DRAFT202012.create_resource(OPENAPI))
METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def operations() -> dict[tuple[str, str], dict[str, Any]]:
    """Every operation of the document: (method, path template) -> operation object."""
    return {
        (method, path): op
        for path, item in OPENAPI["paths"].items()
        for method, op in item.items()
        if method in METHODS
    }


def escape(segment: str) -> str:
    """A JSON pointer segment."""
    return segment.replace("~", "~0").replace("/", "~1")


def response_pointer(method: str, template: str, status: int) -> tuple[str, dict[str, Any]]:
    """The JSON pointer of a documented response, after its $ref, and the response object."""
    pointer = f"/paths/{escape(template)}/{method}/responses/{status}"
    response = OPENAPI["paths"][template][method]["responses"][str(status)]
    if "$ref" in response:
        pointer = response["$ref"].removeprefix("#")
        response = REGISTRY.resolver(DOC_URI).lookup(f"{DOC_URI}#{pointer}").contents
    return pointer, response


def check_body(method: str, template: str, status: int, body: bytes) -> None:
    """The body is what the document says: empty, or JSON valid against the documented schema."""
    pointer, response = response_pointer(method, template, status)
    if "content" not in response:
        assert body == b"", (method, template, status)
        return
    schema = {"$ref": f"{DOC_URI}#{pointer}/content/{escape('application/json')}/schema"}
    Draft202012Validator(schema, registry=REGISTRY).validate(json.loads(body))


def effective_security(op: dict[str, Any]) -> list[Any]:
    """An operation's security requirement, or the document's."""
    return list(op.get("security", OPENAPI["security"]))


def test_openapi_document_is_well_formed_3_1() -> None:
    """The document has OpenAPI 3.1's structure: info, bearer scheme, described responses, resolvable refs."""
    assert OPENAPI["openapi"].startswith("3.1.")
    assert OPENAPI["info"]["title"] and OPENAPI["info"]["version"]
    assert OPENAPI["components"]["securitySchemes"]["bearer"]["type"] == "http"
    assert OPENAPI["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert OPENAPI["security"] == [{"bearer": []}]
    ids = [op["operationId"] for op in operations().values()]
    assert len(ids) == len(set(ids))
    for (method, path), op in operations().items():
        assert op["responses"] and "500" in op["responses"], (method, path)
        for code in op["responses"]:
            assert code.isdigit() and len(code) == 3 and code[0] in "12345", code
            assert response_pointer(method, path, int(code))[1]["description"]
        params = OPENAPI["paths"][path].get("parameters", []) + op.get("parameters", [])
        for name in (part[1:-1] for part in path.split("/") if part.startswith("{")):
            assert {"name": name, "in": "path", "required": True}.items() <= next(
                p for p in params if p["name"] == name
            ).items()
    refs: list[str] = []
    stack: list[Any] = [OPENAPI]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            refs += [node["$ref"]] if "$ref" in node else []
            stack += node.values()
        elif isinstance(node, list):
            stack += node
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        REGISTRY.resolver(DOC_URI).lookup(DOC_URI + ref)
    for schema in OPENAPI["components"]["schemas"].values():
        Draft202012Validator.check_schema(schema)


def test_embedded_job_schema_is_the_shipped_one() -> None:
    """The request body of POST /v1/callbacks is schemas/callback_job.schema.json, so they cannot drift."""
    shipped = json.loads((ROOT / "schemas" / "callback_job.schema.json").read_text())
    embedded = OPENAPI["components"]["schemas"]["CallbackJob"]
    assert embedded == {key: value for key, value in shipped.items() if key not in ("$schema", "$id")}
    body = OPENAPI["paths"]["/v1/callbacks"]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/CallbackJob"}


async def stalled_body() -> AsyncIterator[bytes]:
    """A request body that starts and then never goes on (the server must give up on it)."""
    yield b'{"from_line": '
    await asyncio.Event().wait()


async def test_every_route_and_status_is_documented(
    client: Client, redis: Redis, settings: Settings, sandbox: Sandbox
) -> None:
    """The router's routes are the document's operations, with the same token rule, and each documented
    status but 500 is answered by the app with a body that matches its documented schema. The dashboard's
    HTML pages (``/dashboard``) are no part of the JSON API: docs/dashboard.md documents them."""
    app = client.app
    assert app is not None
    routes = {
        (route.method.lower(), route.resource.canonical): route
        for route in app.router.routes()
        if route.resource is not None and not route.resource.canonical.startswith("/dashboard")
    }
    assert routes.keys() == operations().keys()
    protected = app[GUARD].protected
    for key, op in operations().items():
        assert bool(effective_security(op)) == (routes[key].handler in protected), key

    seen: dict[tuple[str, str], set[int]] = {key: set() for key in operations()}
    dead = Redis.from_url("redis://127.0.0.1:1/0")

    async def expect(
        status: int, method: str, template: str, path: str | None = None, via: Client = client, **kwargs: Any
    ) -> Any:
        async with via.request(method, path or template, **kwargs) as resp:
            body = await resp.read()
        assert resp.status == status, (method, path or template, body)
        seen[(method.lower(), template)].add(status)
        check_body(method.lower(), template, status, body)
        return json.loads(body) if body else None

    one = "/v1/callbacks/{id}"
    json_body = {**AUTH, "Content-Type": "application/json"}
    try:
        async with serving(create_app(redis=dead, settings=settings)) as down:
            await expect(503, "POST", "/v1/callbacks", json=JOB, headers=AUTH, via=down)
            await expect(503, "GET", one, "/v1/callbacks/x", headers=AUTH, via=down)
            await expect(503, "DELETE", one, "/v1/callbacks/x", headers=AUTH, via=down)
        later_job = {**JOB, "not_before": later(hours=1), "idempotency_key": "doc-1"}
        job = await expect(202, "POST", "/v1/callbacks", json=later_job, headers=AUTH)
        await expect(200, "POST", "/v1/callbacks", json=later_job, headers=AUTH)
        await expect(
            202, "POST", "/v1/callbacks", json={**later_job, "idempotency_key": "doc-2"}, headers=AUTH
        )
        await expect(401, "POST", "/v1/callbacks", json=JOB)
        await expect(413, "POST", "/v1/callbacks", data=b" " * (64 * 1024 + 1), headers=json_body)
        await expect(415, "POST", "/v1/callbacks", data=b"{}", headers={**AUTH, "Content-Type": "text/plain"})
        await expect(
            400, "POST", "/v1/callbacks", data=b"not gzip", headers={**json_body, "Content-Encoding": "gzip"}
        )
        async with serving(create_app(redis=redis, settings=settings, body_timeout_s=0.2)) as impatient:
            await expect(408, "POST", "/v1/callbacks", data=stalled_body(), headers=json_body, via=impatient)
        await expect(422, "POST", "/v1/callbacks", json={**JOB, "to_number": "123"}, headers=AUTH)
        await expect(422, "POST", "/v1/callbacks", data=b"nope", headers=json_body)
        for template, path in (("/v1/callbacks", "/v1/callbacks"), (one, "/v1/callbacks/x")):
            await expect(
                204,
                "OPTIONS",
                template,
                path,
                headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
            )
            await expect(204, "OPTIONS", template, path)
            await expect(403, "OPTIONS", template, path, headers={"Origin": "https://evil.example"})
        await expect(200, "GET", one, f"/v1/callbacks/{job['job_id']}", headers=AUTH)
        await expect(200, "GET", one, "/v1/callbacks/doc-1", headers=AUTH)
        await expect(401, "GET", one, "/v1/callbacks/doc-1")
        await expect(404, "GET", one, "/v1/callbacks/nope", headers=AUTH)
        await expect(200, "DELETE", one, "/v1/callbacks/doc-1", headers=AUTH)
        await expect(409, "DELETE", one, "/v1/callbacks/doc-1", headers=AUTH)
        await expect(401, "DELETE", one, "/v1/callbacks/doc-1")
        await expect(404, "DELETE", one, "/v1/callbacks/nope", headers=AUTH)
        await expect(
            409, "POST", "/v1/callbacks", json={**later_job, "text_to_pronounce": "Other"}, headers=AUTH
        )
        events = "/v1/bitrix/events/{portal}"
        form = {"event": "ONVOXIMPLANTCALLEND", "data[CALL_ID]": "c1", "auth[application_token]": "t" * 20}
        await expect(403, "POST", events, "/v1/bitrix/events/default", data=form)
        calls = dataclasses.replace(settings.portals["default"].calls, event_token="t" * 20)
        with_token = dataclasses.replace(
            settings, portals={"default": dataclasses.replace(settings.portals["default"], calls=calls)}
        )
        async with serving(create_app(redis=redis, settings=with_token)) as pushed:
            await expect(200, "POST", events, "/v1/bitrix/events/default", data=form, via=pushed)
            form_type = {"Content-Type": "application/x-www-form-urlencoded"}
            await expect(
                400,
                "POST",
                events,
                "/v1/bitrix/events/default",
                data=b"\xff=\xfe",
                headers=form_type,
                via=pushed,
            )
            await expect(
                413,
                "POST",
                events,
                "/v1/bitrix/events/default",
                data=b"x" * (64 * 1024 + 1),
                headers=form_type,
                via=pushed,
            )
        async with serving(create_app(redis=dead, settings=with_token)) as down:
            await expect(503, "POST", events, "/v1/bitrix/events/default", data=form, via=down)
        portals = {
            name: dataclasses.replace(settings.portals["default"], name=name) for name in ("acme", "beta")
        }
        named = (
            ApiToken("reader", "reader-token-0123456789", access="read"),
            ApiToken("acme", "acme-token-0123456789", frozenset({"acme"})),
        )
        multi = make_settings(
            settings.redis_url, settings.key_prefix, portals, api_tokens=(TOKEN,), named_tokens=named
        )
        async with serving(create_app(redis=redis, settings=multi)) as scoped:
            reader, acme = (
                {"Authorization": "Bearer reader-token-0123456789"},
                {"Authorization": "Bearer acme-token-0123456789"},
            )
            await expect(403, "POST", "/v1/callbacks", json=JOB, headers=reader, via=scoped)
            await expect(
                403, "POST", "/v1/callbacks", json={**JOB, "portal": "beta"}, headers=acme, via=scoped
            )
            await expect(403, "DELETE", one, "/v1/callbacks/x", headers=reader, via=scoped)
            for portal in ("acme", "beta"):
                shared = {**later_job, "portal": portal, "idempotency_key": "doc-3"}
                await expect(202, "POST", "/v1/callbacks", json=shared, headers=AUTH, via=scoped)
            await expect(409, "GET", one, "/v1/callbacks/doc-3", headers=reader, via=scoped)
            await expect(409, "DELETE", one, "/v1/callbacks/doc-3", headers=AUTH, via=scoped)
            await expect(200, "GET", one, "/v1/callbacks/doc-3?portal=beta", headers=reader, via=scoped)
        await expect(200, "GET", "/healthz")
        await expect(200, "GET", "/openapi.json")
        await expect(503, "GET", "/readyz")
        async with running_worker(settings):
            await wait_for(
                lambda: redis.exists(Keys(settings.key_prefix).health), what="the worker's health key"
            )
            await expect(200, "GET", "/readyz")
    finally:
        await dead.aclose()
    for key, op in operations().items():
        assert seen[key] == {int(code) for code in op["responses"]} - {500}, key
