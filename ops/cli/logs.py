"""structlog configuration: JSON in production, key=value on a terminal, secrets and numbers never.

Configured once per process by the CLI. Every line about a job carries job_id, portal and line
because the job runner binds them with ``bind_contextvars``, and its number, which the redaction
processor (:mod:`schemas.policy.log_redaction`) masks in every spelling; CLI output goes through
:class:`RedactingStream`. Both use :mod:`schemas.policy.redact`.
"""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Iterable, Sequence
from typing import TextIO

import structlog
from structlog.typing import Processor

from schemas.policy.log_redaction import RedactProcessor
from schemas.policy.redact import SHAPES, Redactor


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

    Line ids a command prints are configuration, not a client's number: :func:`show_in_full` lets
    them through as they are, although a rented line is named by the company's own number.
    """

    def __init__(self, raw: TextIO, redactor: Redactor = SHAPES, numbers: Sequence[str] = ()) -> None:
        super().__init__()
        self.raw = raw
        self.redactor = redactor
        self.numbers = tuple(numbers)
        self.kept: set[str] = set()
        self._pending = ""

    def write(self, text: str) -> int:
        """Buffer ``text``; write every complete line, masked."""
        self._pending += text
        if "\n" in self._pending:
            lines, _, self._pending = self._pending.rpartition("\n")
            self.raw.write(self.redactor.text(lines + "\n", self.numbers, self.kept))
        return len(text)

    def flush(self) -> None:
        """Write what is buffered (masked), then flush the real stream."""
        if self._pending:
            self.raw.write(self.redactor.text(self._pending, self.numbers, self.kept))
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


def show_in_full(out: object, values: Iterable[str | None]) -> None:
    """Let ``out`` print these line ids as they are (a masking stream would mask one shaped like a
    number by shape): the company's own lines are configuration, shown in full like in the outcome
    records. The numbers in play (``callq enqueue --to``) are still masked exactly.

    Args:
        out: where the command prints; nothing happens unless it is a :class:`RedactingStream`.
        values: line ids (``FROM_LINE`` values).
    """
    if isinstance(out, RedactingStream):
        out.kept.update(value for value in values if value)
