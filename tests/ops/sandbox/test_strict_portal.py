"""The sandbox as strict as a real portal: scopes, permissions, the `scope` method, refused webhooks,
a moved portal, the execution-time limit and the documented voices (dispatch level, no HTTP)."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from ops.sandbox import Sandbox, SandboxPortal
from ops.sandbox.cli import apply_switches, parse_portals
from ops.sandbox.voices import DOCUMENTED_VOICES
from tests.support.helpers import FakeClock
from tests.support.sandbox import CALLBACK_PARAMS

CALLBACK = "voximplant.callback.start"
LINES = "voximplant.line.get"
VOICES = "voximplant.tts.voices.get"
WALL = 1773736066.0


def sandbox(wall: FakeClock | None = None, **switches: Any) -> Sandbox:
    """One portal `default` (webhook 1/sandboxsecret) with the given switches."""
    portal = SandboxPortal(name="default", webhooks={(1, "sandboxsecret")}, rate=1000.0, burst=1000)
    return Sandbox([portal.with_switches(switches)], wall_clock=wall or FakeClock(WALL))


def call(box: Sandbox, method: str, params: dict[str, Any] | None = None, host: str = "") -> tuple[int, Any]:
    """Dispatch one webhook request and answer it (counting its execution time); (status, body)."""
    path = f"/rest/1/sandboxsecret/{method}.json"
    reply = box.dispatch("1", "sandboxsecret", method, dict(params or {}), host=host, path=path)
    return reply.status, box.response_body(reply)


@pytest.mark.parametrize(
    ("scopes", "permissions", "method", "status", "error", "description"),
    [
        (["telephony"], ["outgoing_call"], CALLBACK, 401, "insufficient_scope", "higher privileges"),
        (["call"], ["outgoing_call", "manage_numbers"], LINES, 401, "insufficient_scope", "webhook token"),
        (["call"], [], VOICES, 401, "insufficient_scope", "higher privileges"),
        (["call", "telephony"], ["manage_numbers"], CALLBACK, 403, "ACCESS_DENIED", "Access denied"),
        (["call", "telephony"], ["outgoing_call"], LINES, 403, "ACCESS_DENIED", "Access denied!"),
        (["call", "telephony"], [], VOICES, 200, None, None),
        (["call", "telephony"], ["outgoing_call"], CALLBACK, 200, None, None),
        ([], [], "scope", 200, None, None),
    ],
)
def test_scopes_then_permissions(
    scopes: list[str],
    permissions: list[str],
    method: str,
    status: int,
    error: str | None,
    description: str | None,
) -> None:
    """A method without its scope is 401 insufficient_scope; a permission the user lacks, 403 ACCESS_DENIED;
    neither executes anything."""
    box = sandbox(scopes=scopes, permissions=permissions)
    got, body = call(box, method, CALLBACK_PARAMS if method == CALLBACK else {})
    assert got == status
    if error is not None:
        assert body["error"] == error and description in body["error_description"]
        assert not box.calls(executed_only=True, method=None)


def test_the_scope_method_lists_granted_scopes_or_all() -> None:
    """`scope` answers the webhook's scopes; with `full=true` every scope the portal knows."""
    box = sandbox(scopes=["telephony", "call"])
    assert call(box, "scope")[1]["result"] == ["call", "telephony"]
    full = call(box, "scope", {"full": "true"})[1]["result"]
    assert {"call", "telephony", "crm"} <= set(full)


@pytest.mark.parametrize(
    ("refusal", "description"),
    [("NO_AUTH_FOUND", "Wrong authorization data"), ("INVALID_CREDENTIALS", "Invalid request credentials")],
)
def test_refused_webhooks_answer_either_documented_401(refusal: str, description: str) -> None:
    """A portal switched to refuse its webhooks answers the chosen 401 code for every method."""
    box = sandbox(auth_refusal=refusal)
    for method in (CALLBACK, "scope"):
        status, body = call(box, method, CALLBACK_PARAMS)
        assert (status, body) == (401, {"error": refusal, "error_description": description})
    assert [c.fault for c in box.calls(method=None)] == ["auth", "auth"]


def test_a_moved_portal_redirects_the_old_host_to_the_same_path() -> None:
    """A request on the old host gets a 302 to the new one, same path, uncounted and unexecuted; the new
    host serves it; the record says where each went."""
    box = sandbox(moved_to="http://localhost:8025")
    path = f"/rest/1/sandboxsecret/{CALLBACK}.json"
    reply = box.dispatch(
        "1", "sandboxsecret", CALLBACK, dict(CALLBACK_PARAMS), host="127.0.0.1:8025", path=path
    )
    assert (reply.status, reply.location) == (302, f"http://localhost:8025{path}")
    assert call(box, CALLBACK, CALLBACK_PARAMS, host="localhost:8025")[0] == 200
    assert [(c.host, c.path, c.status, c.executed, c.fault) for c in box.calls()] == [
        ("127.0.0.1:8025", path, 302, False, "moved"),
        ("localhost:8025", path, 200, True, None),
    ]


def test_the_execution_time_limit_refuses_past_the_budget_until_its_oldest_part_leaves() -> None:
    """With 1 s counted per call and a 2 s limit, the fourth call is 429 OPERATION_TIME_LIMIT with
    `operating_reset_at`; once the window passes the first call, the method runs again."""
    wall = FakeClock(WALL)
    box = sandbox(wall, operating_limit_s=2.0, operating_window_s=60.0, processing_s=1.0)
    operating = []
    for _ in range(3):
        status, body = call(box, CALLBACK, CALLBACK_PARAMS)
        assert status == 200
        operating.append((body["time"]["operating"], body["time"]["processing"]))
        wall.advance(1.0)
    assert operating == [(1.0, 1.0), (2.0, 1.0), (3.0, 1.0)]
    status, body = call(box, CALLBACK, CALLBACK_PARAMS)
    assert (status, body["error"]) == (429, "OPERATION_TIME_LIMIT")
    assert body["time"]["operating_reset_at"] == int(WALL + 60)
    assert call(box, VOICES)[0] == 200, "another method keeps working"
    wall.advance(WALL + 60 - wall())  # the first call leaves the window: 2 s left, not over the limit
    assert call(box, CALLBACK, CALLBACK_PARAMS)[0] == 200
    assert len(box.calls(executed_only=True)) == 4


def test_the_default_voices_are_the_documented_list_and_switchable() -> None:
    """A portal offers the voices of Bitrix24's page for the method unless told otherwise."""
    assert call(sandbox(), VOICES)[1]["result"] == dict(DOCUMENTED_VOICES)
    assert call(sandbox(voices={"x1": "X"}), VOICES)[1]["result"] == {"x1": "X"}


def test_switches_change_a_running_portal_without_resetting_it() -> None:
    """`set_switches` grants a scope to a running portal; a bad switch is refused, naming it."""
    box = sandbox(scopes=["telephony"])
    assert call(box, CALLBACK, CALLBACK_PARAMS)[0] == 401
    assert box.set_switches("default", {"scopes": ["call", "telephony"]}).scopes == {"call", "telephony"}
    assert call(box, CALLBACK, CALLBACK_PARAMS)[0] == 200
    with pytest.raises(ValueError, match="auth_refusal"):
        box.set_switches("default", {"auth_refusal": "NOPE"})
    with pytest.raises(ValueError, match="not a switch: lines"):
        box.set_switches("default", {"lines": {}})


def test_command_line_switches_apply_to_one_portal_or_all() -> None:
    """`--scopes call`, `--moved-to acme=URL`, `--processing 2`: NAME= picks a portal, none means all."""
    portals = parse_portals(["default:1:a", "acme:2:b"], 2.0, 50)
    args = argparse.Namespace(
        scopes=["telephony"],
        permissions=None,
        voices=["acme=v1,v2"],
        auth_refusal=None,
        moved_to=["acme=http://localhost:9"],
        operating_limit=None,
        operating_window=None,
        processing=["2"],
    )
    default, acme = apply_switches(portals, args)
    assert (default.scopes, acme.scopes) == ({"telephony"}, {"telephony"})
    assert (default.moved_to, acme.moved_to) == (None, "http://localhost:9")
    assert acme.voices == {"v1": "v1", "v2": "v2"} and default.voices == dict(DOCUMENTED_VOICES)
    assert default.processing_s == acme.processing_s == 2.0
    with pytest.raises(ValueError, match="--processing"):
        apply_switches(portals, argparse.Namespace(**{**vars(args), "processing": ["soon"]}))
