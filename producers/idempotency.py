"""Is a repeat of an idempotency key the same request as the first? Pure.

Like Stripe's idempotency keys: the same key with the same request answers with the first job; the
same key with a different request is an error (``IDEMPOTENCY_KEY_REUSED``) naming the fields that
differ, never silently the first job. "The same request" is compared after normalisation, on what
the producer decides:

- ``from_line``, ``to_number`` (in E.164, so ``8 911 …`` and ``+7 911 …`` are the same),
  ``text_to_pronounce`` and ``voice`` (after the line's defaults), ``not_before`` (as an instant) and
  ``metadata`` (as JSON);
- ``deadline`` only when the repeat sends one: left out, it is computed from the arrival time and
  differs on every submission;
- for a job that replays a dead letter, neither ``not_before`` nor ``deadline``: a replay is called
  from now with a fresh deadline, so the producer's original request still matches it.

The portal and the key are the same by construction (a key is looked up on its portal).
"""

from __future__ import annotations

import json
from typing import Any

from producers.validation import FieldError
from schemas.policy.redact import mask_number
from schemas.wire.job import CallbackJob, parse_rfc3339

COMPARED = ("from_line", "to_number", "text_to_pronounce", "voice", "not_before", "deadline", "metadata")
"""The job fields a repeat must match, in the order differences are reported."""


def differences(first: CallbackJob, repeat: CallbackJob, *, deadline_sent: bool) -> list[FieldError]:
    """The fields in which ``repeat`` asks for something other than ``first`` (empty: the same request).

    Args:
        first: the job that holds the key.
        repeat: the normalised job of the new request.
        deadline_sent: whether the new request gave a deadline (else the server computed it).

    Returns:
        One error per differing field, numbers masked (``+7911***4567``), other values left out.
    """
    skipped = {"not_before", "deadline"} if first.replay_of else set()
    if not deadline_sent:
        skipped.add("deadline")
    found = []
    for name in COMPARED:
        if name in skipped:
            continue
        before, now = _comparable(name, getattr(first, name)), _comparable(name, getattr(repeat, name))
        if before != now:
            found.append(FieldError(name, _message(name, first, repeat)))
    return found


def _comparable(name: str, value: Any) -> Any:
    if value is None:
        return None
    if name in ("not_before", "deadline"):
        return parse_rfc3339(value)  # the same instant however it was written
    if name == "metadata":
        return json.dumps(value, sort_keys=True, separators=(",", ":"))  # 1 and true and 1.0 differ
    return value


def _message(name: str, first: CallbackJob, repeat: CallbackJob) -> str:
    if name == "to_number":
        now, before = mask_number(repeat.to_number), mask_number(first.to_number)
        if now == before:
            return f"differs from the first request ({now}, in digits the mask hides)"
        return f"differs from the first request: {now}, first {before}"
    if name == "deadline":
        return "differs from the first request's (a deadline is compared when the repeat sends one)"
    if getattr(first, name) is None or getattr(repeat, name) is None:
        return "differs from the first request (sent in one and not in the other)"
    return "differs from the first request"
