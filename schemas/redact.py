"""Masking of personal data and secrets before anything is logged or printed.

Pure functions, shared by producers and the worker so that neither depends on the host
application's logging configuration to keep a number or a webhook secret out of its logs.
"""

from __future__ import annotations

import re

_WEBHOOK = re.compile(r"(/rest/\d+/)([^/\s?#]+)")
_AUTH_PARAM = re.compile(r"((?:auth|access_token|refresh_token|client_secret)=)([^&\s]+)", re.IGNORECASE)


def mask_number(number: str | None) -> str | None:
    """Keep a number recognisable for support without revealing it.

    Args:
        number: a phone number in any spelling.

    Returns:
        The first five and last four characters with stars between (``+7911***4567``); short
        inputs keep fewer characters so that at least half is hidden.
    """
    if number is None:
        return None
    text = number.strip()
    if len(text) >= 12:
        return f"{text[:5]}***{text[-4:]}"
    keep = max(len(text) // 4, 0)
    return f"{text[:keep]}***{text[len(text) - keep :] if keep else ''}"


def redact_secrets(text: str) -> str:
    """Remove webhook codes and OAuth tokens from a URL or any free text."""
    return _AUTH_PARAM.sub(r"\1***", _WEBHOOK.sub(r"\1***", text))
