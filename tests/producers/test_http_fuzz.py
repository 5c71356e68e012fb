"""POST /v1/callbacks answers every body with JSON and never with a 5xx (a property test)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from ops.sandbox import SandboxHandle
from producers.http import create_app
from schemas.job import JOB_FIELDS
from tests.helpers import make_settings, sandbox_portal

Client = TestClient[web.Request, web.Application]

TOKEN = "t0k-0123456789abcdef"
DOCUMENTED = {
    int(code) for code in json.loads((Path(__file__).parents[2] / "schemas" / "openapi.json").read_text())[
        "paths"]["/v1/callbacks"]["post"]["responses"]
}  # fmt: skip

# A quarter of the text has a lone surrogate in it (JSON can carry one as a \u escape): text()
# does not make them by default.
texts = st.one_of(
    st.text(max_size=30),
    st.text(max_size=30),
    st.text(max_size=30),
    st.tuples(st.text(max_size=5), st.characters(categories=["Cs"]), st.text(max_size=5)).map("".join),
)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | texts
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(texts, children, max_size=4),
    max_leaves=12,
)
# Values that get a job past its first checks, so later ones (numbers, dates, dedupe) are reached.
plausible = st.sampled_from([
    "+79111234567", "8 (911) 123-45-67", "+1 650 253 0000", "123", "reg1332", "default", "Hello",
    "2026-11-21T10:00:00+03:00", "2020-01-01T00:00:00Z", "9999-12-31T23:59:59-23:59",
    "0001-01-01T00:00:00+23:59", "2026-02-30T10:00:00+03:00", "", "\ud800", "x" * 2001,
])  # fmt: skip
job_dicts = st.dictionaries(
    st.sampled_from([*JOB_FIELDS, "colour"]), plausible | json_values, min_size=1, max_size=len(JOB_FIELDS)
)
VALID = {"from_line": "reg1332", "to_number": "+79111234567", "text_to_pronounce": "Hello"}
# A valid job with a few fields changed: new jobs, duplicates, idempotent repeats, expiries, rejections.
near_valid = st.builds(
    lambda changes, key: {**VALID, **changes, **({"idempotency_key": key} if key else {})},
    st.dictionaries(st.sampled_from([*JOB_FIELDS, "colour"]), plausible | texts | json_values, max_size=2),
    st.sampled_from([None, "k1", "k2"]),
)


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, or a JSON value or job-shaped object, written with or without \\u escapes."""
    kind = draw(st.sampled_from(["bytes", "value", "job", "near-valid", "near-valid"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    value = draw({"value": json_values, "job": job_dicts, "near-valid": near_valid}[kind])
    # Raw UTF-8 output writes a lone surrogate as bytes that are not UTF-8 at all.
    text = json.dumps(value, ensure_ascii=draw(st.sampled_from([True, True, False])))
    return text.encode("utf-8", "surrogatepass")


# Half the bodies are sent as JSON, so that most examples get past the Content-Type check.
content_types = st.one_of(
    st.sampled_from(["application/json", "application/json; charset=utf-8", "Application/JSON"]),
    st.sampled_from(["application/json; charset=latin-1", "text/plain", "application/octet-stream",
                     "application/x-www-form-urlencoded", None]),
)  # fmt: skip


@pytest.fixture
async def client(redis_url: str, prefix: str, redis: Redis, portal: SandboxHandle) -> AsyncIterator[Client]:
    """The API over a real Redis, shared by every example of the test."""
    portals = {"default": sandbox_portal(portal.webhook_url("default"))}
    app = create_app(redis=redis, settings=make_settings(redis_url, prefix, portals, api_tokens=(TOKEN,)))
    async with TestClient(TestServer(app)) as client:
        yield client


def strict_json(raw: bytes) -> Any:
    """Decode as RFC 8259 JSON: NaN and Infinity are not JSON."""

    def refuse(name: str) -> Any:
        raise ValueError(f"{name} in a response")

    return json.loads(raw.decode("utf-8"), parse_constant=refuse)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=bodies(), content_type=content_types)
# Bodies that once got past checks into Redis or json.dumps, always tried first.
@example(body=b'{"from_line": "\\ud800"}', content_type="application/json")
@example(body=b'{"metadata": {"\\udc00": 1}, "idempotency_key": "\\udfff"}', content_type="application/json")
@example(
    body=json.dumps({**VALID, "metadata": {"a": float("nan")}}).encode(), content_type="application/json"
)
@example(
    body=json.dumps({**VALID, "not_before": "9999-12-31T23:59:59-23:59"}).encode(),
    content_type="application/json",
)
@example(body=b"[" * 100_000, content_type="application/json")
async def test_post_answers_json_and_never_5xx(client: Client, body: bytes, content_type: str | None) -> None:
    """Whatever the body and Content-Type, the answer is a documented non-5xx status with a JSON body,
    and a submission that got a job id can be read back by it."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if content_type is not None:
        headers["Content-Type"] = content_type
    async with client.post(
        "/v1/callbacks", data=body, headers=headers, skip_auto_headers=["Content-Type"]
    ) as resp:
        raw = await resp.read()
        status, media = resp.status, resp.content_type
    event(f"status {status}")
    assert status < 500, raw
    assert status in DOCUMENTED
    assert media == "application/json"
    answer = strict_json(raw)
    if status == 422:
        assert answer["errors"] and all(set(e) == {"field", "message"} for e in answer["errors"])
    if status in (200, 202, 422):
        async with client.get(f"/v1/callbacks/{answer['job_id']}", headers=headers) as resp:
            assert resp.status == 200
            view = strict_json(await resp.read())
        assert view["status"] == ("rejected" if status == 422 else answer["status"])
