"""Unit tests of the emulated Bitrix24 methods and of redaction (no HTTP)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ops.sandbox.methods import LINE_GET, VOICES_GET, normalize_phone, php_string, run_method
from ops.sandbox.portal import SandboxPortal
from ops.sandbox.redact import mask_phone, mask_url_secret
from tests.support.sandbox import CALLBACK


@pytest.mark.parametrize(
    ("raw", "normalized"),
    [
        ("+79111234567", "79111234567"),
        ("8 (911) 123-45-67", "79111234567"),
        ("+1 (911) 555-0100", "19115550100"),
        ("0049301234567", "49301234567"),
        ("011442071234567", "442071234567"),
        ("+8613812345678", "8613812345678"),
        ("0301234567", "301234567"),
        ("abc", ""),
        ("", ""),
        ("+0", ""),
    ],
)
def test_normalize_phone_matches_bitrix(raw: str, normalized: str) -> None:
    """TO_NUMBER is normalised like CVoxImplantPhone::Normalize($number, 0)."""
    assert normalize_phone(raw) == normalized


@pytest.mark.parametrize(
    ("value", "text"), [(None, ""), (True, "1"), (False, ""), (79111234567, "79111234567"), ([1], "Array")]
)
def test_php_string(value: Any, text: str) -> None:
    """Decoded JSON parameters become strings the way PHP would convert them."""
    assert php_string(value) == text


def _run(params: dict[str, Any], portal: SandboxPortal | None = None, method: str = CALLBACK) -> Any:
    portal = portal or SandboxPortal(name="default", rest_lines={"rest5"})
    return run_method(portal, method, params, make_call_id=lambda: "callback.x.1")


@pytest.mark.parametrize(
    ("params", "status", "description"),
    [
        ({"FROM_LINE": "nope", "TO_NUMBER": "+79111234567"}, 400, "Could not find line nope"),
        ({"TO_NUMBER": "+79111234567"}, 400, "Could not find line "),
        ({"from_line": "reg1332", "to_number": "+79111234567"}, 400, "Could not find line "),
        ({"FROM_LINE": "nope", "TO_NUMBER": "x"}, 400, "Could not find line nope"),
        ({"FROM_LINE": "reg1332", "TO_NUMBER": "call me"}, 400, "Phone number is not correct"),
        ({"FROM_LINE": "reg1332"}, 400, "Phone number is not correct"),
    ],
)
def test_callback_start_errors(params: dict[str, Any], status: int, description: str) -> None:
    """Bad lines are reported before bad numbers, with ERROR_CORE and case-sensitive names."""
    outcome = _run(params)
    assert (outcome.status, outcome.executed) == (status, False)
    assert outcome.body == {"error": "ERROR_CORE", "error_description": description}


def test_callback_start_without_text_is_accepted() -> None:
    """TEXT_TO_PRONOUNCE and VOICE are optional and passed through, as in Bitrix24."""
    outcome = _run({"FROM_LINE": "reg1333", "TO_NUMBER": 79111234567})
    assert (outcome.status, outcome.executed, outcome.call_id) == (200, True, "callback.x.1")
    assert outcome.body == {"result": {"RESULT": True, "CALL_ID": "callback.x.1"}}


def test_rest_app_line_returns_null_call_id_without_checking_the_number() -> None:
    """A REST-app line only notifies the app, so CALL_ID is null and the number is not checked."""
    outcome = _run({"FROM_LINE": "rest5", "TO_NUMBER": ""})
    assert (outcome.status, outcome.executed, outcome.call_id) == (200, True, None)
    assert outcome.body == {"result": {"RESULT": True, "CALL_ID": None}}


def test_line_get_and_voices_get() -> None:
    """line.get lists the portal's lines and tts.voices.get lists voice ids with descriptions."""
    lines = _run({}, method=LINE_GET).body["result"]
    assert lines == {"rest5": "rest5", "reg1332": "Sandbox line 1", "reg1333": "Sandbox line 2"}
    voices = _run({}, method=VOICES_GET).body["result"]
    assert {"usinternalfemale", "usenglishfemale", "eurgermanfemale"} <= voices.keys()


def test_new_call_ids_are_bitrix_shaped() -> None:
    """Generated CALL_IDs look like `callback.<32 hex>.<unix time>`."""
    from ops.sandbox.methods import new_call_id

    assert re.fullmatch(r"callback\.[0-9a-f]{32}\.1773736077", new_call_id(1773736077.9))


@pytest.mark.parametrize(
    ("number", "masked"),
    [("+79111234567", "+7911***4567"), ("79111234567", "79111***4567"), ("123456789", "***"), ("", "***")],
)
def test_mask_phone(number: str, masked: str) -> None:
    """Phone numbers keep only their first 5 and last 4 characters in logs."""
    assert mask_phone(number) == masked


def test_mask_url_secret() -> None:
    """A webhook code inside a URL is replaced by stars."""
    assert mask_url_secret("http://h/rest/1/s3cr3t/", "s3cr3t") == "http://h/rest/1/***/"
