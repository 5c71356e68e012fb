"""Faults: what goes wrong with one request to the sandbox portal (see `plan.py` for when).

Faults target `voximplant.callback.start` by default, or another implemented method.

Whether a faulty request still *executed* (a real portal would have placed the call) matters
for crash-safety tests: an error raised before execution is safe to retry, an error, dropped
connection or hang after execution is not.

The description of an `error` fault and the body of a `raw` one may hold placeholders that are
filled from the request, as a real portal echoes what it was sent ("Phone number +79111234567 is
not correct"): `{TO_NUMBER}` (as sent), `{WEBHOOK}` (the webhook code in the request's path) and
`{AUTH}` (the `auth` parameter: an OAuth access token). Tests use them to check that callq masks
whatever a portal echoes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

CALLBACK_START = "voximplant.callback.start"


class FaultKind(StrEnum):
    """The kinds of misbehaviour a fault can inject."""

    ERROR = "error"
    RAW = "raw"
    DELAY = "delay"
    HANG = "hang"
    RESET = "reset"


PLACEHOLDERS = ("{TO_NUMBER}", "{WEBHOOK}", "{AUTH}")


def fill_placeholders(text: str, echo: Mapping[str, str]) -> str:
    """Replace `{TO_NUMBER}`, `{WEBHOOK}` and `{AUTH}` in `text` with what the request sent.

    Args:
        text: A fault's description or body.
        echo: The request's values by placeholder name (`TO_NUMBER`, `WEBHOOK`, `AUTH`); a
            missing one fills in as empty.

    Returns:
        The text as the portal answers it.
    """
    for placeholder in PLACEHOLDERS:
        if placeholder in text:
            text = text.replace(placeholder, echo.get(placeholder[1:-1], ""))
    return text


def default_executed(status: int) -> bool:
    """Say whether an injected error with this HTTP status happens after the call was placed.

    Args:
        status: The HTTP status of the injected answer.

    Returns:
        True for 5xx other than 503: a server error is typically raised after the method ran,
        while 503 (`QUERY_LIMIT_EXCEEDED`, `OVERLOAD_LIMIT`) refuses before running it.
    """
    return status >= 500 and status != 503


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected misbehaviour; build it with the classmethod constructors."""

    kind: FaultKind
    status: int = 200
    code: str = ""
    description: str = ""
    body: str = ""
    content_type: str = "text/html"
    seconds: float = 0.0
    executed: bool = True

    @classmethod
    def error(cls, status: int, code: str, description: str, executed: bool | None = None) -> Fault:
        """Answer with a Bitrix24 error body `{"error": code, "error_description": description}`.

        Args:
            status: HTTP status, e.g. 503, 429, 401, 500.
            code: Bitrix24 error code, e.g. `QUERY_LIMIT_EXCEEDED`.
            description: The `error_description` text.
            executed: Whether the call was placed before the error; None picks
                `default_executed(status)`.

        Returns:
            The fault.
        """
        resolved = default_executed(status) if executed is None else executed
        return cls(FaultKind.ERROR, status=status, code=code, description=description, executed=resolved)

    @classmethod
    def raw(
        cls, status: int, body: str, executed: bool | None = None, content_type: str = "text/html"
    ) -> Fault:
        """Answer with an arbitrary body, e.g. a proxy's 502 HTML page.

        Args:
            status: HTTP status.
            body: Response body text.
            executed: Whether the call was placed; None picks `default_executed(status)`.
            content_type: The response's content type.

        Returns:
            The fault.
        """
        resolved = default_executed(status) if executed is None else executed
        return cls(FaultKind.RAW, status=status, body=body, content_type=content_type, executed=resolved)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Execute normally, but answer only after `seconds`.

        Args:
            seconds: How long to hold the answer back.

        Returns:
            The fault.
        """
        if seconds < 0:
            raise ValueError(f"delay must not be negative, got {seconds}")
        return cls(FaultKind.DELAY, seconds=seconds)

    @classmethod
    def hang(cls, executed: bool = True) -> Fault:
        """Never answer, until the client disconnects or the server shuts down.

        Args:
            executed: Whether the call was placed before the hang (default True).

        Returns:
            The fault.
        """
        return cls(FaultKind.HANG, executed=executed)

    @classmethod
    def reset(cls, executed: bool = True) -> Fault:
        """Drop the TCP connection without any HTTP answer.

        Args:
            executed: Whether the call was placed before the drop (default True).

        Returns:
            The fault.
        """
        return cls(FaultKind.RESET, executed=executed)

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> Fault:
        """Build a fault from its JSON form (as used by the control API).

        Args:
            spec: A mapping with `kind` and that kind's fields, as `to_dict` writes them.

        Returns:
            The fault.

        Raises:
            ValueError: If the kind is unknown or a field is missing or has a wrong type.
        """
        try:
            kind = FaultKind(spec["kind"])
            executed = _optional_bool(spec.get("executed"))
            if kind is FaultKind.ERROR:
                return cls.error(int(spec["status"]), str(spec["code"]), str(spec["description"]), executed)
            if kind is FaultKind.RAW:
                content_type = str(spec.get("content_type", "text/html"))
                return cls.raw(int(spec["status"]), str(spec.get("body", "")), executed, content_type)
            if kind is FaultKind.DELAY:
                return cls.delay(float(spec["seconds"]))
            if kind is FaultKind.HANG:
                return cls.hang(True if executed is None else executed)
            return cls.reset(True if executed is None else executed)
        except KeyError as exc:
            raise ValueError(f"fault spec is missing field {exc.args[0]!r}") from exc
        except TypeError as exc:
            raise ValueError(f"fault spec has a field of the wrong type: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form that `from_dict` reads back.

        Returns:
            A dict holding only the fields that matter for this kind.
        """
        if self.kind is FaultKind.ERROR:
            return {
                "kind": self.kind.value,
                "status": self.status,
                "code": self.code,
                "description": self.description,
                "executed": self.executed,
            }
        if self.kind is FaultKind.RAW:
            return {
                "kind": self.kind.value,
                "status": self.status,
                "body": self.body,
                "content_type": self.content_type,
                "executed": self.executed,
            }
        if self.kind is FaultKind.DELAY:
            return {"kind": self.kind.value, "seconds": self.seconds}
        return {"kind": self.kind.value, "executed": self.executed}


def _optional_bool(value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise ValueError(f"'executed' must be true, false or null, got {value!r}")
