"""What the HTTP layer must do for one REST request: answer (maybe late), hang, or drop."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ops.sandbox.faults import Fault, FaultKind
from ops.sandbox.methods import error_body


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
    """

    status: int
    body: dict[str, Any] | None = None
    text: str | None = None
    content_type: str = "application/json"
    action: ReplyAction = ReplyAction.ANSWER
    delay_s: float = 0.0
    timed: tuple[str, str, float] | None = None


def fault_reply(fault: Fault) -> Reply:
    """Return the reply a fault that replaces the method's answer calls for (not `delay`)."""
    if fault.kind is FaultKind.ERROR:
        return Reply(fault.status, error_body(fault.code, fault.description))
    if fault.kind is FaultKind.RAW:
        return Reply(fault.status, text=fault.body, content_type=fault.content_type)
    if fault.kind is FaultKind.HANG:
        return Reply(0, action=ReplyAction.HANG)
    if fault.kind is FaultKind.RESET:
        return Reply(0, action=ReplyAction.RESET)
    raise AssertionError(f"a {fault.kind} fault always executes")
