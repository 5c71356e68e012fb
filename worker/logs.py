"""structlog configuration: JSON in production, key=value on a terminal, secrets never.

Configured once per process by the CLI. Every line about a job carries job_id, portal and line
because the job runner binds them with ``bind_contextvars``.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from schemas.redact import mask_number, redact_secrets

NUMBER_KEYS = frozenset({"to_number", "number", "phone", "TO_NUMBER"})
SECRET_KEYS = frozenset(
    {"webhook_url", "token", "access_token", "refresh_token", "client_secret", "api_token", "authorization"}
)


def redact(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Mask phone numbers and drop secrets from a log event (a structlog processor)."""
    return _redact_mapping(event_dict)


def _redact_mapping(data: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key, value in list(data.items()):
        if key in SECRET_KEYS and value is not None:
            data[key] = "***"
        elif key in NUMBER_KEYS and isinstance(value, str):
            data[key] = mask_number(value)
        elif isinstance(value, str):
            data[key] = redact_secrets(value)
        elif isinstance(value, dict):
            data[key] = _redact_mapping(dict(value))
    return data


def shared_processors() -> list[Processor]:
    """Processors every renderer shares, redaction last so nothing added later escapes it."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact,
    ]


def configure_logging(*, json_output: bool | None = None, level: str = "INFO") -> None:
    """Configure structlog and route the stdlib loggers (arq, aiohttp) through it.

    Args:
        json_output: JSON lines if true, key=value if false; None picks JSON unless stderr is a tty.
        level: minimum level name.
    """
    use_json = (not sys.stderr.isatty()) if json_output is None else json_output
    renderer: Processor = (
        structlog.processors.JSONRenderer()
        if use_json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared_processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared_processors()],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # arq logs every job start/finish at INFO with its arguments; callq logs its own canonical line.
    logging.getLogger("arq").setLevel(logging.WARNING)
