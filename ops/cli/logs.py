"""structlog configuration: JSON in production, key=value on a terminal, secrets and numbers never.

Configured once per process by the CLI. Every line about a job carries job_id, portal and line
because the job runner binds them with ``bind_contextvars``; it also binds the job's number
(:func:`bind_job_number`), so that the redaction processor masks that number in every spelling,
whatever text it hides in. The processor runs last, after exceptions are formatted, on callq's own
events and on the standard-library records of redis-py, aiohttp and arq alike; CLI output goes
through :class:`RedactingStream`. Both use :mod:`schemas.policy.redact`.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Sequence
from typing import TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from schemas.policy.redact import MASK, SHAPES, Redactor, mask_number, number_spellings

NUMBER_KEYS = frozenset({"to_number", "number", "phone", "TO_NUMBER"})
SECRET_KEYS = frozenset(
    {"webhook_url", "token", "access_token", "refresh_token", "client_secret", "api_token", "authorization"}
)
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
    """Mask this number (every spelling) in every log line of the current context (the job's run)."""
    structlog.contextvars.bind_contextvars(**{KNOWN_NUMBERS: KnownNumbers(number_spellings(number))})


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
            else:
                out[redactor.key(key, numbers)] = redactor.value(value, numbers)
        return out


redact = RedactProcessor()
"""The processor with no configured secret (masks by shape and by the job's number)."""


def shared_processors(redactor: Redactor = SHAPES) -> list[Processor]:
    """Processors every renderer shares, redaction last so nothing added later escapes it."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        RedactProcessor(redactor),
    ]


def configure_logging(
    *,
    json_output: bool | None = None,
    level: str = "INFO",
    redactor: Redactor = SHAPES,
    stream: TextIO | None = None,
) -> None:
    """Configure structlog and route the stdlib loggers (arq, aiohttp, redis-py) through it.

    Args:
        json_output: JSON lines if true, key=value if false; None picks JSON unless the stream is a tty.
        level: minimum level name.
        redactor: masks the process's configured secrets too (:func:`schemas.policy.redact.known_secrets`).
        stream: where lines go (default ``sys.stderr``).
    """
    out = stream or sys.stderr
    use_json = (not out.isatty()) if json_output is None else json_output
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=out.isatty())
    )
    structlog.configure(
        processors=[*shared_processors(redactor), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared_processors(redactor)],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # arq logs every job start/finish at INFO with its arguments; callq logs its own canonical line.
    logging.getLogger("arq").setLevel(logging.WARNING)


class RedactingStream(io.TextIOBase):
    """A text stream that masks numbers and secrets line by line before writing to ``raw``.

    The CLI puts one in place of ``sys.stdout`` and ``sys.stderr``, so that whatever a command
    prints (tables, JSON, error messages, an uncaught traceback) is masked like the logs.

    Args:
        raw: the real stream.
        redactor: the process's redactor; the CLI swaps in the configured one once settings load.
        numbers: spellings of numbers known to be in play (``callq enqueue --to``).
    """

    def __init__(self, raw: TextIO, redactor: Redactor = SHAPES, numbers: Sequence[str] = ()) -> None:
        super().__init__()
        self.raw = raw
        self.redactor = redactor
        self.numbers = tuple(numbers)
        self._pending = ""

    def write(self, text: str) -> int:
        """Buffer ``text``; write every complete line, masked."""
        self._pending += text
        if "\n" in self._pending:
            lines, _, self._pending = self._pending.rpartition("\n")
            self.raw.write(self.redactor.text(lines + "\n", self.numbers))
        return len(text)

    def flush(self) -> None:
        """Write what is buffered (masked), then flush the real stream."""
        if self._pending:
            self.raw.write(self.redactor.text(self._pending, self.numbers))
            self._pending = ""
        self.raw.flush()

    def isatty(self) -> bool:
        """Whether the real stream is a terminal."""
        return self.raw.isatty()

    def fileno(self) -> int:
        """The real stream's file descriptor."""
        return self.raw.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        """The real stream's encoding."""
        return str(getattr(self.raw, "encoding", "utf-8"))

    def writable(self) -> bool:
        """Always: this is an output stream."""
        return True

    def close(self) -> None:
        """Flush; the real stream stays open (it is not ours)."""
        if not self.closed:
            self.flush()
        super().close()
