"""Masking of phone numbers and webhook codes before they reach a log line.

The main project has its own redaction; the sandbox keeps a tiny copy so that it does not
depend on worker internals.
"""

from __future__ import annotations

_KEEP_HEAD = 5
_KEEP_TAIL = 4


def mask_phone(number: str) -> str:
    """Mask a phone number for logs, keeping its first 5 and last 4 characters.

    Args:
        number: The number as received (E.164 like `+79111234567`, or bare digits).

    Returns:
        For example `+7911***4567`; `***` when the number is too short to show any part.
    """
    number = number.strip()
    if len(number) <= _KEEP_HEAD + _KEEP_TAIL:
        return "***"
    return f"{number[:_KEEP_HEAD]}***{number[-_KEEP_TAIL:]}"


def mask_url_secret(url: str, secret: str) -> str:
    """Replace every occurrence of `secret` in `url` with `***`.

    Args:
        url: A URL that may contain a webhook code.
        secret: The webhook code to hide.

    Returns:
        The URL with the code masked.
    """
    return url.replace(secret, "***") if secret else url
