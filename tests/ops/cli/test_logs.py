"""Log redaction: numbers masked and secrets dropped in every event, exception text included. Pure."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog
from aiohttp.http_exceptions import BadHttpMessage
from redis.exceptions import OutOfMemoryError

from ops.cli.jobs import json_output
from ops.cli.logs import RedactingStream, configure_logging, show_in_full
from schemas.policy.log_redaction import KNOWN_NUMBERS, KnownNumbers, bind_job_number, redact
from schemas.policy.redact import Redactor, number_spellings

PIPELINE_ERROR = (
    'Command # 1 (EVALSHA 59b9 7 p:job:0e4b p:claim:default:reg1332:+79111234567 0e4b {"portal":"default",'
    '"to_number":"+79111234567","created_at":"2026-11-30T06:10:01Z"} 1796029200000) of pipeline caused error: '
    "(\"command not allowed when used memory > 'maxmemory'.\",)"
)


def test_redact_processor() -> None:
    """The structlog processor masks number fields, drops secret fields and cleans strings, nested too."""
    event = {
        "event": "job.failed",
        "to_number": "+79111234567",
        "webhook_url": "https://a.bitrix24.ru/rest/1/code/",
        "description": "cannot connect to https://a.bitrix24.ru/rest/1/c0de/x",
        "params": {"TO_NUMBER": "+79111234567"},
    }
    out = redact(None, "info", event)
    assert out["to_number"] == "+7911***4567"
    assert out["webhook_url"] == "***"
    assert "c0de" not in out["description"]
    assert out["params"] == {"TO_NUMBER": "+7911***4567"}


def test_redact_processor_free_text_keys_and_exceptions() -> None:
    """Free text, dict keys, lists, large ints and formatted tracebacks are searched, not only known keys."""
    event = {
        "event": "job.rejected",
        "error": "+79111234567: unknown field (allowed: from_line, to_number)",
        "fields": [{"89111234567": "x"}],
        "lead": 79111234567,
        "exception": f"Traceback (most recent call last):\nredis.exceptions.OutOfMemoryError: {PIPELINE_ERROR}",
        "timestamp": "2026-11-30T06:10:01.123456Z",
        "intake_id": "1764482129000-0",
        "attempt": 2,
    }
    out = json.dumps(redact(None, "error", event))
    for form in ("79111234567", "89111234567", "9111234567"):
        assert form not in out
    assert "2026-11-30T06:10:01.123456Z" in out and "1764482129000-0" in out and '"attempt": 2' in out


def test_job_number_bound_in_context_is_masked_in_any_spelling() -> None:
    """The runner's number is masked even where no shape gives it away, and its binding never shows."""
    structlog.contextvars.clear_contextvars()
    bind_job_number("+3725123456")  # 7 national digits: too short to mask by shape alone
    event = structlog.contextvars.merge_contextvars(
        None, "warning", {"event": "x", "d": "Number 5123456 is bad"}
    )
    out = redact(None, "warning", event)
    assert KNOWN_NUMBERS not in out
    assert "5123456" not in out["d"]
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def root_handlers() -> Iterator[None]:
    """Put the root logger back as it was after a test that configures logging."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_stdlib_tracebacks_and_configured_secrets_are_masked(root_handlers: None) -> None:
    """redis-py's EVALSHA arguments, aiohttp's raw header and a configured secret are masked in every line."""
    stream = io.StringIO()
    configure_logging(json_output=True, level="DEBUG", redactor=Redactor(["s3cr3t-webhook"]), stream=stream)
    try:
        raise OutOfMemoryError(PIPELINE_ERROR)
    except OutOfMemoryError:
        logging.getLogger("redis.asyncio.client").exception("failed with s3cr3t-webhook")
    try:  # what aiohttp's server logs for a header with a control character (raw bytes quoted)
        raise BadHttpMessage("Invalid header value char:\n\n  b'Authorization: Bearer t0ken-abc\\x01'\n   ^")
    except BadHttpMessage:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "127.0.0.1")
    structlog.get_logger("callq").warning("job.attempt_failed", description="webhook s3cr3t-webhook refused")
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    text = json.dumps(lines)
    assert len(lines) == 3 and "maxmemory" in lines[0]["exception"] and "Bearer ***" in lines[1]["exception"]
    assert "t0ken-abc" not in text
    assert "s3cr3t-webhook" not in text
    assert "79111234567" not in text and "+7911***4567" in text


def test_redacting_stream_masks_whole_lines() -> None:
    """A line written in pieces is masked whole; what is left is masked on flush."""
    raw = io.StringIO()
    stream = RedactingStream(raw, Redactor(["api-t0ken-1"]), numbers=("5123456",))
    print("to +7911", end="", file=stream)
    print("1234567 with api-t0ken-1", file=stream)
    stream.write("local 5123456")
    assert raw.getvalue() == "to +7911***4567 with ***\n"
    stream.flush()
    assert raw.getvalue().endswith("\nlocal 5***6")


def test_json_output_stays_valid_json_through_the_masking_stream() -> None:
    """--json output masks a number in a producer's metadata as a string, so the masked text still parses."""
    raw = io.StringIO()
    stream = RedactingStream(raw)
    view = {"metadata": {"lead": 79111234567, "phone": "+79111234567"}, "attempts": 2}
    print(json_output(view), file=stream)
    assert json.loads(raw.getvalue()) == {
        "metadata": {"lead": "79***67", "phone": "+7911***4567"},
        "attempts": 2,
    }


def test_line_ids_are_shown_in_full_in_cli_output_and_logs() -> None:
    """A line named by the company's number prints in full (text, JSON, log field); the job's number stays masked."""
    raw = io.StringIO()
    stream = RedactingStream(raw, numbers=("79111234567",))
    show_in_full(stream, ["74951234568", None])
    view = {"from_line": "74951234568", "lines": {"74951234568": "Sales 74951234569"}, "to": "79111234567"}
    print(json_output(view, lines=["74951234568"]), file=stream)
    print("line 74951234568 to 79111234567", file=stream)
    assert raw.getvalue().splitlines() == [
        '{"from_line": "74951234568", "lines": {"74951234568": "Sales 74***69"}, "to": "79***67"}',
        "line 74951234568 to 79***67",
    ]
    number = KnownNumbers(number_spellings("+79111234567"))
    event = {"event": "job.sent", "from_line": "74951234568", "line": "79111234567", KNOWN_NUMBERS: number}
    assert redact(None, "info", event) == {"event": "job.sent", "from_line": "74951234568", "line": "79***67"}
