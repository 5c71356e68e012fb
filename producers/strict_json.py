"""Strict JSON for job input (RFC 8259): UTF-8, no NaN or Infinity, Unicode text only, bounded depth.

Python's ``json`` accepts more than callq can store or echo: ``NaN`` and ``Infinity`` (then written
back as non-standard JSON), lone surrogate escapes (``"\\ud800"``, which cannot be encoded for Redis)
and unbounded nesting (``RecursionError``). Every way in decodes through :func:`decode_strict`, so
such input is rejected with a reason rather than crashing or being stored.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_JSON_DEPTH = 100
"""A job is flat but for its metadata; nothing legitimate nests this deep."""

_JSON_TYPES = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean"}


class JsonProblem(ValueError):
    """Why the text is not acceptable JSON; ``field`` names the top-level field, or "" for the whole."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def decode_strict(body: bytes | str) -> dict[str, Any]:
    """Decode a JSON object strictly.

    Raises:
        JsonProblem: not UTF-8, not JSON, a non-finite number, a lone surrogate, nested too deep,
            or not an object.
    """
    try:
        text = body.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError as exc:
        raise JsonProblem("", f"not UTF-8 text: {exc.reason} at byte {exc.start}") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise JsonProblem("", f"nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:  # JSONDecodeError, and integers too long to convert
        raise JsonProblem("", f"not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise JsonProblem("", f"must be a JSON object, got {_JSON_TYPES.get(type(data), 'null')}")
    check_storable(data)
    return data


def check_storable(data: dict[str, Any]) -> None:
    """Refuse lone surrogates and deep nesting in an already decoded object (also Python API input).

    Raises:
        JsonProblem: naming the top-level field (a nested key may be anything, even a phone number).
    """
    if not all(_is_text(key) for key in data):
        raise JsonProblem("", "a field name is not Unicode text (a lone \\uD800-\\uDFFF escape)")
    stack: list[tuple[Any, str, int]] = [(value, key, 1) for key, value in data.items()]
    while stack:  # no recursion: the depth of the input is what is being checked
        value, top, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            raise JsonProblem(top, f"nested more than {MAX_JSON_DEPTH} levels deep")
        if isinstance(value, str) and not _is_text(value):
            raise JsonProblem(top, "is not Unicode text (a lone \\uD800-\\uDFFF escape)")
        if isinstance(value, float) and not math.isfinite(value):
            raise JsonProblem(top, "holds a number that is not finite")
        if isinstance(value, dict):
            if not all(_is_text(key) for key in value):
                raise JsonProblem(top, "a key is not Unicode text (a lone \\uD800-\\uDFFF escape)")
            stack.extend((child, top, depth + 1) for child in value.values())
        elif isinstance(value, list):
            stack.extend((child, top, depth + 1) for child in value)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:20]} is out of range")
    return value


def _is_text(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
