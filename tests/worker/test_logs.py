"""Log redaction: numbers masked, secrets dropped, in every event. Pure."""

from __future__ import annotations

import pytest

from schemas.redact import mask_number, redact_secrets
from worker.logs import redact


@pytest.mark.parametrize(
    ("number", "masked"),
    [
        ("+79111234567", "+7911***4567"),
        ("+4930123456789", "+4930***6789"),
        ("12345678", "12***78"),
        ("", "***"),
    ],
)
def test_mask_number(number: str, masked: str) -> None:
    """A number keeps its head and tail; at least half of a short one is hidden."""
    assert mask_number(number) == masked


def test_redact_secrets_in_urls_and_text() -> None:
    """Webhook codes and OAuth tokens vanish from any text."""
    text = "POST https://acme.bitrix24.ru/rest/1/s3cr3tc0de/voximplant.callback.start.json?auth=tok123&x=1"
    out = redact_secrets(text)
    assert "s3cr3tc0de" not in out and "tok123" not in out
    assert out == "POST https://acme.bitrix24.ru/rest/1/***/voximplant.callback.start.json?auth=***&x=1"


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
