"""What the HTTP layer must do for one REST request: answer (maybe late), hang, or drop."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ops.sandbox.faults import Fault, FaultKind, fill_placeholders
from ops.sandbox.methods import error_body, php_string


class ReplyAction(StrEnum):
    """How the HTTP layer must finish a request."""

    ANSWER = "answer"
    HANG = "hang"
    RESET = "reset"


@dataclass(frozen=True, slots=True)
class Reply:
    """The decision for one REST request.

    Attributes:
        status: HTTP status to answer with.
        body: JSON body; a success body gets its `time` object from `Sandbox.response_body`.
        text: Raw body text instead of JSON (raw faults).
        content_type: Content type of `text`.
        action: Answer, hang or drop the connection.
        delay_s: Seconds to wait before answering.
        timed: `(portal, method, received_wall)` when the body needs a `time` object.
        location: The `Location` header of a redirect.
    """

    status: int
    body: dict[str, Any] | None = None
    text: str | None = None
    content_type: str = "application/json"
    action: ReplyAction = ReplyAction.ANSWER
    delay_s: float = 0.0
    timed: tuple[str, str, float] | None = None
    location: str | None = None


def request_echo(params: Mapping[str, Any], code: str) -> dict[str, str]:
    """What a fault's placeholders are filled with: the request's `TO_NUMBER`, webhook code, `auth`."""
    return {
        "TO_NUMBER": php_string(params.get("TO_NUMBER")),
        "WEBHOOK": code,
        "AUTH": php_string(params.get("auth")),
    }


def fault_reply(fault: Fault, echo: Mapping[str, str] | None = None) -> Reply:
    """Return the reply a fault that replaces the method's answer calls for (not `delay`).

    Args:
        fault: The fault.
        echo: What the request sent, for the placeholders of `error` and `raw` faults
            (see `ops.sandbox.faults.fill_placeholders`).
    """
    if fault.kind is FaultKind.ERROR:
        return Reply(fault.status, error_body(fault.code, fill_placeholders(fault.description, echo or {})))
    if fault.kind is FaultKind.RAW:
        body = fill_placeholders(fault.body, echo or {})
        return Reply(fault.status, text=body, content_type=fault.content_type)
    if fault.kind is FaultKind.HANG:
        return Reply(0, action=ReplyAction.HANG)
    if fault.kind is FaultKind.RESET:
        return Reply(0, action=ReplyAction.RESET)
    raise AssertionError(f"a {fault.kind} fault always executes")
