"""The log redaction processor: no secret and no full number in any log line (a structlog processor).

The job runner binds the job's number (:func:`bind_job_number`), so that the processor masks that
number in every spelling, whatever text it hides in. The processor runs last, after exceptions are
formatted, on callq's own events and on the standard-library records of redis-py, aiohttp and arq
alike (:mod:`ops.cli.logs` configures it once per process). It uses :mod:`schemas.policy.redact`.
"""

from __future__ import annotations

import structlog
from structlog.typing import EventDict, WrappedLogger

from schemas.policy.redact import MASK, SHAPES, Redactor, admitted_spellings, mask_number

NUMBER_KEYS = frozenset({"to_number", "number", "phone", "TO_NUMBER"})
SECRET_KEYS = frozenset(
    {"webhook_url", "token", "access_token", "refresh_token", "client_secret", "api_token", "authorization"}
)
LINE_KEYS = frozenset({"from_line", "line", "FROM_LINE"})
"""Keys whose value is a line id: configuration, kept as it is (a rented line is named by the
company's own number); the job's number is still masked in it."""
KNOWN_NUMBERS = "_callq_numbers"
"""Context key under which the runner binds the job's number; the processor takes it out."""
_KEPT = frozenset({"timestamp", "level", "_record", "_from_structlog"})  # ours, or structlog's own meta


class KnownNumbers:
    """The spellings of the job's number, carried in structlog's context (``repr`` shows none)."""

    __slots__ = ("spellings",)

    def __init__(self, spellings: tuple[str, ...]) -> None:
        self.spellings = spellings

    def __repr__(self) -> str:
        return "<numbers hidden>"


def bind_job_number(number: str) -> None:
    """Mask this number (every spelling) in every log line of the current context (the job's run).

    Args:
        number: the job's ``to_number`` as admission stored it (E.164; spelled out without parsing it
            again, :func:`schemas.policy.redact.admitted_spellings`).
    """
    structlog.contextvars.bind_contextvars(**{KNOWN_NUMBERS: KnownNumbers(admitted_spellings(number))})


class RedactProcessor:
    """A structlog processor: mask numbers and secrets in every key and value of an event.

    Known keys are handled by name (a ``token`` is dropped, a ``to_number`` masked); every other
    string, nested or not, is searched for secrets and numbers, exception text included.

    Args:
        redactor: the process's redactor (with its configured secrets).
    """

    def __init__(self, redactor: Redactor = SHAPES) -> None:
        self.redactor = redactor

    def __call__(self, _logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
        known = event_dict.pop(KNOWN_NUMBERS, None)
        numbers = known.spellings if isinstance(known, KnownNumbers) else ()
        redactor = self.redactor
        out: EventDict = {}
        for key, value in event_dict.items():
            if key in _KEPT:
                out[key] = value
            elif key in SECRET_KEYS and value is not None:
                out[key] = MASK
            elif key in NUMBER_KEYS and isinstance(value, str) and MASK not in value:
                out[key] = mask_number(value)
            elif key in LINE_KEYS and isinstance(value, str):
                out[key] = redactor.text(value, numbers, (value,))
            else:
                out[redactor.key(key, numbers)] = redactor.value(value, numbers)
        return out


redact = RedactProcessor()
"""The processor with no configured secret (masks by shape and by the job's number)."""
