"""The cost of log redaction: microseconds per log line through the redaction processor, against
rendering the same line as JSON (the renderer every production line goes through) in the same run.

The lines are the shapes a worker logs: a plain event, one with a number in free text, one during
a job (its number bound, masked in every spelling), a traceback-like text, and Cyrillic text (the
non-ASCII path, which matches on an ASCII view of the text). ``ratio`` is redaction over rendering.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from schemas.policy.log_redaction import KNOWN_NUMBERS, KnownNumbers, RedactProcessor
from schemas.policy.redact import Redactor, number_spellings

_TRACE = (
    'Traceback (most recent call last):\n  File "/srv/callq/worker/jobs/run.py", line 88, in run\n'
    "redis.exceptions.ResponseError: EVALSHA 6f1e... 3 callq:job:e3f09d60044a431d9f57 "
    '{"from_line":"reg1332","to_number":"+79111234567","text_to_pronounce":"Hello"} 1764482129000-0'
)


def _events() -> dict[str, Callable[[], dict[str, Any]]]:
    number = KnownNumbers(number_spellings("+79111234567"))
    base = {"timestamp": "2026-11-30T05:55:29.123456Z", "level": "info", "job_id": "e3f09d60044a431d9f57"}
    return {
        "plain": lambda: {**base, "event": "job.sent", "portal": "acme", "line": "reg1332", "attempt": 1},
        "number": lambda: {
            **base,
            "event": "bitrix.error",
            "description": "Number +7 911 123-45-67 is wrong",
        },
        "in_job": lambda: {
            **base,
            "event": "job.finished",
            "call_id": "callback.1bba8e19a7db2f637b2b9f68d5f676e9.1795287427",
            "took_ms": 1234.5,
            KNOWN_NUMBERS: number,
        },
        "traceback": lambda: {**base, "event": "job.crashed", "exception": _TRACE},
        "cyrillic": lambda: {
            **base,
            "event": "bitrix.error",
            "description": "Номер 8 (911) 123‑45‑67 неверный",
        },
    }


def _per_line_us(fn: Callable[[], object], n: int) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - started) / n)
    return best * 1e6


async def run(*, quick: bool) -> dict[str, Any]:
    """Measure; returns the figures (µs per line, and the ratio to rendering)."""
    n = 500 if quick else 20_000
    processor = RedactProcessor(Redactor(["s3cr3tc0de77", "api-t0ken-1234"]))
    figures: dict[str, Any] = {"lines": n}
    total_redact = total_render = 0.0
    for name, make in _events().items():
        fresh = iter(
            [make() for _ in range(5 * n)]
        )  # the processor pops the bound number: one event per call
        shown = {k: v for k, v in make().items() if k != KNOWN_NUMBERS}
        redact_us = _per_line_us(lambda: processor(None, "info", next(fresh)), n)  # noqa: B023 (used at once)
        render_us = _per_line_us(lambda: json.dumps(shown), n)  # noqa: B023 (used at once)
        figures[f"{name}_us"] = redact_us
        total_redact += redact_us
        total_render += render_us
    figures["render_us_mean"] = total_render / len(_events())
    figures["ratio"] = total_redact / total_render
    return figures
