"""Tests of `Sandbox.dispatch`: the order of checks, buckets, recording and logging, without HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog
from structlog.testing import capture_logs

from ops.sandbox import Fault, Sandbox, SandboxPortal
from ops.sandbox.reply import ReplyAction
from tests.support.helpers import FakeClock
from tests.support.sandbox import CALLBACK, CALLBACK_PARAMS, TIME_FIELDS


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    yield
    structlog.reset_defaults()


def _sandbox(clock: FakeClock | None = None, burst: int = 50) -> Sandbox:
    portals = [
        SandboxPortal(name="default", webhooks={(1, "sandboxsecret")}, rate=1.0, burst=burst),
        SandboxPortal(name="acme", webhooks={(7, "acmesecret"), (8, "acmesecond")}, rate=1.0, burst=burst),
    ]
    return Sandbox(portals, clock=clock or FakeClock(), wall_clock=lambda: 1773736066.0)


@pytest.mark.parametrize(
    ("user_id", "code", "method", "status", "error"),
    [
        ("1", "wrong", CALLBACK, 401, "NO_AUTH_FOUND"),
        ("2", "sandboxsecret", CALLBACK, 401, "NO_AUTH_FOUND"),
        ("x", "sandboxsecret", CALLBACK, 401, "NO_AUTH_FOUND"),
        ("1", "wrong", "crm.lead.add", 404, "ERROR_METHOD_NOT_FOUND"),
        ("1", "sandboxsecret", "crm.lead.add", 404, "ERROR_METHOD_NOT_FOUND"),
        ("1", "sandboxsecret", "", 404, "ERROR_METHOD_NOT_FOUND"),
        ("1", "sandboxsecret", CALLBACK + ".xml", 400, "ERROR_INTERNAL_WRONG_TRANSPORT"),
        ("7", "sandboxsecret", CALLBACK, 401, "NO_AUTH_FOUND"),
    ],
)
def test_refusals_before_execution(user_id: str, code: str, method: str, status: int, error: str) -> None:
    """Unknown methods are 404 even with bad credentials (as in CRestServer), then bad webhooks are 401."""
    sandbox = _sandbox()
    reply = sandbox.dispatch(user_id, code, method, dict(CALLBACK_PARAMS))
    assert reply.status == status
    assert reply.body is not None and reply.body["error"] == error
    assert not any(call.executed for call in sandbox.calls(method=None))


@pytest.mark.parametrize("method", [CALLBACK, CALLBACK + ".json", "VoxImplant.Callback.Start.JSON"])
def test_method_names_are_case_insensitive_with_optional_json_suffix(method: str) -> None:
    """The method name may carry `.json` and any letter case."""
    sandbox = _sandbox()
    reply = sandbox.dispatch("1", "sandboxsecret", method, dict(CALLBACK_PARAMS))
    assert reply.status == 200
    [call] = sandbox.calls(executed_only=True)
    assert call.method == CALLBACK


def test_any_webhook_of_a_portal_authenticates_it() -> None:
    """Each of a portal's webhooks identifies that portal."""
    sandbox = _sandbox()
    sandbox.dispatch("8", "acmesecond", CALLBACK, dict(CALLBACK_PARAMS))
    assert [call.portal for call in sandbox.calls()] == ["acme"]


def test_bucket_counts_every_method_per_portal() -> None:
    """line.get and unknown methods use up the same bucket as callback.start, only on their portal."""
    clock = FakeClock()
    sandbox = _sandbox(clock, burst=3)
    assert sandbox.dispatch("1", "sandboxsecret", "voximplant.line.get", {}).status == 200
    assert sandbox.dispatch("1", "sandboxsecret", "crm.lead.add", {}).status == 404
    assert sandbox.dispatch("1", "sandboxsecret", CALLBACK, dict(CALLBACK_PARAMS)).status == 200
    refused = sandbox.dispatch("1", "sandboxsecret", CALLBACK, dict(CALLBACK_PARAMS))
    assert (refused.status, refused.body) == (
        503,
        {"error": "QUERY_LIMIT_EXCEEDED", "error_description": "Too many requests"},
    )
    assert sandbox.dispatch("7", "acmesecret", CALLBACK, dict(CALLBACK_PARAMS)).status == 200
    clock.advance(1.0)  # one slot drained, but the refused request had added 1 too
    assert sandbox.dispatch("1", "sandboxsecret", CALLBACK, dict(CALLBACK_PARAMS)).status == 503
    clock.advance(2.0)
    assert sandbox.dispatch("1", "sandboxsecret", CALLBACK, dict(CALLBACK_PARAMS)).status == 200
    faults = [call.fault for call in sandbox.calls(portal="default")]
    assert faults == [None, "rate_limit", "rate_limit", None]


def test_bucket_refusal_does_not_consume_a_fault() -> None:
    """A request refused by the bucket never reaches the fault queue."""
    sandbox = _sandbox(burst=1)
    sandbox.dispatch("1", "sandboxsecret", "voximplant.line.get", {})
    sandbox.add_faults([Fault.reset()])
    assert sandbox.dispatch("1", "sandboxsecret", CALLBACK, dict(CALLBACK_PARAMS)).status == 503
    assert sandbox.faults()["pending"][0]["kind"] == "reset"


def test_executed_faults_record_a_call_id_and_no_status() -> None:
    """A reset after execution records the call as executed, with its CALL_ID and no HTTP status."""
    sandbox = _sandbox()
    sandbox.add_faults([Fault.reset(), Fault.reset(executed=False)])
    first = sandbox.dispatch("1", "sandboxsecret", CALLBACK, dict(CALLBACK_PARAMS))
    second = sandbox.dispatch("1", "sandboxsecret", CALLBACK, dict(CALLBACK_PARAMS))
    assert first.action is second.action is ReplyAction.RESET
    executed, not_executed = sandbox.calls()
    assert (executed.executed, executed.status, executed.fault) == (True, None, "reset")
    assert executed.call_id is not None and executed.call_id.startswith("callback.")
    assert (not_executed.executed, not_executed.call_id) == (False, None)


def test_error_after_execution_on_an_invalid_request_is_not_executed() -> None:
    """A 500 injected after execution still leaves an invalid request unexecuted."""
    sandbox = _sandbox()
    sandbox.add_faults([Fault.error(500, "INTERNAL_SERVER_ERROR", "boom")])
    reply = sandbox.dispatch("1", "sandboxsecret", CALLBACK, {"FROM_LINE": "nope", "TO_NUMBER": "1"})
    assert reply.status == 500
    assert sandbox.calls()[0].executed is False


def test_success_body_gets_a_time_object() -> None:
    """A success answer carries Bitrix24's `time` object, with operating_reset_at 10 minutes out."""
    sandbox = _sandbox()
    body = sandbox.response_body(sandbox.dispatch("1", "sandboxsecret", CALLBACK, dict(CALLBACK_PARAMS)))
    assert body is not None
    assert set(body["time"]) == TIME_FIELDS
    assert body["time"]["operating_reset_at"] == 1773736066 + 600
    assert body["time"]["date_start"] == "2026-03-17T08:27:46+00:00"


def test_reset_forgets_calls_faults_and_buckets() -> None:
    """reset() empties the record, the fault plan and every bucket."""
    sandbox = _sandbox(burst=1)
    sandbox.dispatch("1", "sandboxsecret", CALLBACK, dict(CALLBACK_PARAMS))
    sandbox.add_faults([Fault.hang()])
    sandbox.reset()
    assert sandbox.calls(method=None) == []
    assert sandbox.faults() == {"pending": [], "random": None}
    assert sandbox.dispatch("1", "sandboxsecret", CALLBACK, dict(CALLBACK_PARAMS)).status == 200


def test_faults_for_an_unknown_portal_or_method_are_refused() -> None:
    """Naming a portal or method that does not exist is an error, not a silently idle fault."""
    with pytest.raises(KeyError, match="nope"):
        _sandbox().add_faults([Fault.reset()], portal="nope")
    with pytest.raises(ValueError, match=r"crm\.lead\.add"):
        _sandbox().set_random_faults(1.0, [Fault.reset()], method="crm.lead.add")


def test_a_webhook_cannot_belong_to_two_portals() -> None:
    """Adding a portal that reuses another portal's webhook fails."""
    with pytest.raises(ValueError, match="already belongs"):
        _sandbox().add_portal(SandboxPortal(name="copy", webhooks={(1, "sandboxsecret")}))


def test_logs_mask_the_number_and_never_show_the_webhook_code() -> None:
    """The `sandbox.call` event shows a masked number and no webhook code."""
    sandbox = _sandbox()
    with capture_logs() as logs:
        sandbox.dispatch("1", "sandboxsecret", CALLBACK, dict(CALLBACK_PARAMS))
        sandbox.dispatch("1", "wrongsecret", CALLBACK, dict(CALLBACK_PARAMS))
    assert [entry["event"] for entry in logs] == ["sandbox.call", "sandbox.call"]
    assert logs[0]["to_number"] == "+7911***4567"
    text = repr(logs)
    assert "sandboxsecret" not in text and "wrongsecret" not in text and "79111234567" not in text


async def test_wait_for_calls_returns_once_enough_are_recorded() -> None:
    """wait_for_calls returns the records as soon as the count is reached, and times out otherwise."""
    sandbox = _sandbox()
    sandbox.dispatch("1", "sandboxsecret", CALLBACK, dict(CALLBACK_PARAMS))
    assert len(await sandbox.wait_for_calls(1, executed_only=True)) == 1
    with pytest.raises(TimeoutError, match="expected 2"):
        await sandbox.wait_for_calls(2, timeout_s=0.01)
