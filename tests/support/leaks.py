"""Helpers of ``tests/integration/test_no_leaks*.py``: planted secrets and numbers, everything callq wrote,
and a search of the one for the others."""

from __future__ import annotations

import contextlib
import functools
import json
import re
import socket
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from schemas.store.keys import Keys
from schemas.store.records import decode_text
from schemas.wire.job import RECORD_FIELDS
from tests.support.helpers import job_json
from tests.support.processes import run_callq

REDIS_PASSWORD = "rEd1sPa55w0rdQx"
API_TOKEN = "ap1T0kenS3cretZz"


def job(number: str, portal: str = "default", **more: Any) -> str:
    """A job's JSON for the intake stream, on ``portal``."""
    return job_json(number, portal=portal, **more)


def spellings(e164: str) -> tuple[str, ...]:
    """A Russian number as people and programs write it: ``+79111234567``, ``79111234567``,
    ``89111234567``, ``9111234567``."""
    return e164, e164[1:], "8" + e164[2:], e164[2:]


@dataclass
class Written:
    """Everything callq wrote in a test, by where it went, and the values that must not be in it.

    Attributes:
        secrets: planted secrets, found verbatim.
        numbers: planted numbers (E.164), found in any of their :func:`spellings`.
        texts: what was written, by label (``worker log``, ``callq dead show``, ``GET /v1/...``).
    """

    secrets: set[str] = field(default_factory=set)
    numbers: set[str] = field(default_factory=set)
    texts: dict[str, str] = field(default_factory=dict)

    def add(self, label: str, text: str | bytes) -> str:
        """Keep ``text`` under ``label`` (appended if the label is known); return it as text."""
        value = decode_text(text, errors="replace")
        self.texts[label] = self.texts.get(label, "") + value
        return value

    async def cli(self, args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
        """Run ``callq ARGS`` and keep its stdout and stderr."""
        code, out, err = await run_callq(args, env, timeout_s=60)
        label = "callq " + " ".join(args)
        self.add(f"{label} (stdout)", out)
        self.add(f"{label} (stderr)", err)
        return code, out, err

    def leaks(self) -> list[str]:
        """Each planted value found, with where and around what: secrets verbatim, numbers in any
        spelling (separators of any kind between the digits, any script of digits)."""
        values = self.secrets | {form for number in self.numbers for form in spellings(number)}
        separated = {number: _separated(number[2:]) for number in self.numbers}
        found = []
        for label, text in self.texts.items():
            for value in sorted(values):
                at = text.find(value)
                if at >= 0:
                    found.append(f"{label}: {value!r} in …{text[max(at - 100, 0) : at + 100]!r}…")
            ascii_digits = text if text.isascii() else "".join(_ascii_digit(c) for c in text)
            for number, pattern in sorted(separated.items()):
                if match := pattern.search(ascii_digits):
                    at = match.start()
                    found.append(
                        f"{label}: {number!r} spelled {text[at : match.end()]!r} in …{text[max(at - 100, 0) : at + 100]!r}…"
                    )
        return found


def _separated(digits: str) -> re.Pattern[str]:
    between = r"(?:[^0-9A-Za-z]|%20){0,3}"
    return re.compile(between.join(digits))


def _ascii_digit(char: str) -> str:
    digit = unicodedata.decimal(char, None)
    return char if digit is None else str(digit)


async def redis_texts(redis: Redis, prefix: str) -> dict[str, str]:
    """What callq stored for others to read: the outcome stream, every record but its job (the
    worker needs the number to call it) and every halt reason."""
    keys = Keys(prefix)
    entries = await redis.xrange(keys.outcomes)
    found = {f"{keys.outcomes} {_s(entry_id)}": json.dumps(_text(fields)) for entry_id, fields in entries}
    async for key in redis.scan_iter(match=keys.job("*")):
        record = {_s(k): _s(v) for k, v in (await redis.hgetall(key)).items()}  # type: ignore[misc]
        for name in ("job", *RECORD_FIELDS.values()):  # the job: as JSON, or one field per value
            record.pop(name, None)
        found[_s(key)] = json.dumps(record)
    async for key in redis.scan_iter(match=f"{prefix}:halt:*"):
        found[_s(key)] = _s(await redis.get(key) or b"")
    return found


_s = functools.partial(decode_text, errors="replace")
"""Whatever callq stored, as text (not UTF-8 would be a finding, not a reason to stop)."""


def _text(fields: dict[Any, Any]) -> dict[str, str]:
    return {_s(k): _s(v) for k, v in fields.items()}


def raw_request(port: int, request: bytes) -> bytes:
    """Send bytes as they are (a header no HTTP client would send) and read the answer to the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        with contextlib.suppress(TimeoutError, ConnectionError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer
