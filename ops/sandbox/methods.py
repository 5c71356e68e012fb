"""The Bitrix24 REST methods the sandbox implements, as pure functions of portal and params.

Behaviour follows Bitrix24's REST documentation
(https://apidocs.bitrix24.com/api-reference/telephony/voximplant/voximplant-callback-start.html) and
its telephony module's code (`vi_rest.php::startCallback`, `vi_outgoing.php::startCallBack`,
`CVoxImplantPhone::Normalize`): parameter names are case-sensitive (`FROM_LINE`, not `from_line`),
an unknown line is checked before the number, a REST-app line skips the number check and
answers `CALL_ID: null`, and method errors are HTTP 400 `ERROR_CORE`.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ops.sandbox.faults import CALLBACK_START
from ops.sandbox.portal import SCOPES, SandboxPortal

LINE_GET = "voximplant.line.get"
VOICES_GET = "voximplant.tts.voices.get"
SCOPE = "scope"
STATISTIC_GET = "voximplant.statistic.get"
EVENT_BIND = "event.bind"
EVENT_GET = "event.get"
CALL_METHODS = frozenset({STATISTIC_GET, EVENT_BIND, EVENT_GET})
"""Answered by the sandbox's call player (`ops.sandbox.calls`), not by `run_method`."""
SUPPORTED_METHODS = frozenset({CALLBACK_START, LINE_GET, VOICES_GET, SCOPE}) | CALL_METHODS

METHOD_SCOPES: Mapping[str, str] = {
    CALLBACK_START: "call",
    LINE_GET: "telephony",
    VOICES_GET: "telephony",
    STATISTIC_GET: "telephony",
}
"""The scope each method needs (`scope` needs none)."""
METHOD_PERMISSIONS: Mapping[str, tuple[str, str]] = {
    CALLBACK_START: ("outgoing_call", "Access denied"),
    LINE_GET: ("manage_numbers", "Access denied!"),
}
"""The permission each method checks, and its refusal's description (as the module words it)."""

JSON_CONTENT_TYPE = "application/json"

_NOT_PHONE_CHARS = re.compile(r"[^0-9#*+,;]")


@dataclass(frozen=True, slots=True)
class MethodOutcome:
    """What a method produced: the HTTP status, the body and whether a call was placed.

    A success body holds only `result`; the HTTP layer adds `time` when it answers.
    """

    status: int
    body: dict[str, Any]
    executed: bool = False
    call_id: str | None = None


def error_body(code: str, description: str) -> dict[str, Any]:
    """Return Bitrix24's error shape `{"error": code, "error_description": description}`."""
    return {"error": code, "error_description": description}


def php_string(value: Any) -> str:
    """Convert a decoded parameter the way PHP's string conversion would."""
    if value is None or value is False:
        return ""
    if value is True:
        return "1"
    if isinstance(value, list | dict):
        return "Array"
    return str(value)


def normalize_phone(number: str) -> str:
    """Port of `CVoxImplantPhone::Normalize($number, 0)`, used by callback.start.

    Args:
        number: TO_NUMBER as received.

    Returns:
        The digits (plus `#*,;`) with international prefixes dropped; empty or `0` means
        "Phone number is not correct" (PHP treats both as false).
    """
    if number.startswith("+8"):
        number = "008" + number[2:]
    number = _NOT_PHONE_CHARS.sub("", number).replace("+", "")
    if number[:2] in ("80", "81", "82"):
        return number
    if number.startswith("00"):
        return number[2:]
    if number.startswith("011"):
        return number[3:]
    if number.startswith("8") and len(number) == 11:
        return "7" + number[1:]
    if number.startswith("0"):
        return number[1:]
    return number


def new_call_id(now_wall: float) -> str:
    """Return a CALL_ID shaped like Bitrix24's: `callback.<32 hex>.<unix time>`."""
    return f"callback.{secrets.token_hex(16)}.{int(now_wall)}"


def scope_refusal(portal: SandboxPortal, method: str, *, oauth: bool) -> MethodOutcome | None:
    """The REST server's refusal of a method whose scope the webhook (or app) lacks, else None."""
    needed = METHOD_SCOPES.get(method)
    if needed is None or needed in portal.scopes:
        return None
    token = "access token" if oauth else "webhook token"
    description = f"The request requires higher privileges than provided by the {token}"
    return MethodOutcome(401, error_body("insufficient_scope", description))


def run_method(
    portal: SandboxPortal,
    method: str,
    params: Mapping[str, Any],
    *,
    make_call_id: Callable[[], str],
) -> MethodOutcome:
    """Execute one supported method for `portal`.

    Args:
        portal: The portal the webhook belongs to.
        method: A lower-cased name from `SUPPORTED_METHODS`.
        params: The request parameters.
        make_call_id: Returns a fresh CALL_ID for a placed callback.

    Returns:
        The outcome; unsupported methods answer 404 `ERROR_METHOD_NOT_FOUND`, a permission the
        webhook's user lacks 403 `ACCESS_DENIED`.
    """
    permission = METHOD_PERMISSIONS.get(method)
    if permission is not None and permission[0] not in portal.permissions:
        return MethodOutcome(403, error_body("ACCESS_DENIED", permission[1]))
    if method == CALLBACK_START:
        return _start_callback(portal, params, make_call_id)
    if method == LINE_GET:
        lines = {line: line for line in sorted(portal.rest_lines)} | portal.lines
        return MethodOutcome(200, {"result": lines})
    if method == VOICES_GET:
        return MethodOutcome(200, {"result": dict(portal.voices)})
    if method == SCOPE:
        full = php_string(params.get("full")).lower() in ("1", "true", "y")
        return MethodOutcome(200, {"result": list(SCOPES) if full else sorted(portal.scopes)})
    return MethodOutcome(404, error_body("ERROR_METHOD_NOT_FOUND", "Method not found!"))


def _start_callback(
    portal: SandboxPortal, params: Mapping[str, Any], make_call_id: Callable[[], str]
) -> MethodOutcome:
    # TEXT_TO_PRONOUNCE and VOICE are passed through unchecked, like the real method does.
    line = php_string(params.get("FROM_LINE"))
    if line not in portal.lines and line not in portal.rest_lines:
        return MethodOutcome(400, error_body("ERROR_CORE", f"Could not find line {line}"))
    if line in portal.rest_lines:
        # A REST-app line only fires onExternalCallBackStart; the app places the call.
        return MethodOutcome(200, {"result": {"RESULT": True, "CALL_ID": None}}, executed=True)
    if normalize_phone(php_string(params.get("TO_NUMBER"))) in ("", "0"):
        return MethodOutcome(400, error_body("ERROR_CORE", "Phone number is not correct"))
    call_id = make_call_id()
    return MethodOutcome(
        200, {"result": {"RESULT": True, "CALL_ID": call_id}}, executed=True, call_id=call_id
    )
