"""callq's exception tree for talking to Bitrix24.

::

    CallqError
    ├── BitrixCallError          a request to a portal did not return a usable result
    │   ├── BitrixApiError       the portal answered with a Bitrix24 error body (code, description)
    │   ├── BitrixHttpError      the portal answered, but not with a Bitrix24 body (502 page, junk)
    │   │   └── PortalMoved      a redirect to the portal's new address (nothing was run)
    │   └── TransportError       no answer: ``phase`` says whether the request can have been sent
    ├── AuthRefused              an OAuth refresh refused for good (:mod:`worker.bitrix.oauth`): re-authorize the app
    └── AuthUnavailable          the token endpoint could not be reached (:mod:`worker.bitrix.oauth`): try later

Text from outside (a portal's error description and body, an exception's message) is masked as each
error is built (:func:`schemas.policy.redact.redact_text`), so that no number or secret it echoes reaches
an outcome, an attempt entry, a halt reason or a log line. The request's own secrets and number are
masked exactly by :mod:`worker.bitrix.client` before it builds the error.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from schemas.policy.redact import redact_text

if TYPE_CHECKING:
    from worker.policy.operating import OperatingReading


class CallqError(Exception):
    """Base of every error callq raises on purpose."""


class BitrixCallError(CallqError):
    """A request to a portal did not return a usable result.

    Attributes:
        http_status: the HTTP status, or None if there was no answer.
        code: Bitrix24's error code (as sent; compare case-insensitively), or None.
        description: what went wrong, safe to store (numbers and secrets masked).
    """

    http_status: int | None = None
    code: str | None = None

    def __init__(self, description: str) -> None:
        self.description = redact_text(description)
        super().__init__(self.description)


class BitrixApiError(BitrixCallError):
    """The portal answered with ``{"error": CODE, "error_description": TEXT}``.

    Attributes:
        operating: the method's execution-time figures, when the answer carried a ``time`` object.
    """

    def __init__(
        self,
        *,
        http_status: int,
        code: str,
        description: str,
        body: str = "",
        operating: OperatingReading | None = None,
    ) -> None:
        super().__init__(description)
        self.http_status = http_status
        self.code = redact_text(code)
        self.body = redact_text(body)
        self.operating = operating

    def __str__(self) -> str:
        return f"{self.code} (HTTP {self.http_status}): {self.description}"


class BitrixHttpError(BitrixCallError):
    """The portal answered with something that is not a Bitrix24 result or error body."""

    def __init__(self, *, http_status: int, body: str) -> None:
        body = redact_text(body)  # before cutting it short: a cut must not leave half a number unmasked
        super().__init__(f"HTTP {http_status} without a Bitrix24 body: {body[:300]!r}")
        self.http_status = http_status
        self.body = body


class PortalMoved(BitrixHttpError):
    """The portal answered a redirect to another host that :mod:`worker.policy.redirect` accepts: it
    moved, and ran nothing. Sent again to ``origin`` at once; raised past the sender only if the new
    address redirects too.

    Attributes:
        origin: the new ``scheme://host[:port]`` (no path, nothing secret).
    """

    def __init__(self, *, http_status: int, origin: str) -> None:
        BitrixCallError.__init__(self, f"HTTP {http_status}: the portal moved to {origin}")
        self.http_status = http_status
        self.body = ""
        self.origin = origin


Phase = Literal["connect", "sent"]


class TransportError(BitrixCallError):
    """No answer came back.

    Attributes:
        phase: ``connect`` if the request was never sent (refused, DNS, TLS handshake, connect
            timeout): safe to repeat. ``sent`` if it may have reached the portal (read timeout,
            reset after sending): its result is unknown.
    """

    def __init__(self, *, phase: Phase, description: str) -> None:
        super().__init__(description)
        self.phase: Phase = phase


class AuthRefused(CallqError):
    """The token endpoint refused for good: halt the portal and tell ops (re-authorize the app).

    Attributes:
        portal: The portal's name.
        code: The OAuth error code (``invalid_grant``, ``invalid_client``, ...).
        description: What the endpoint said, without secrets.
        http_status: The HTTP status, if there was an answer.
    """

    def __init__(self, *, portal: str, code: str, description: str, http_status: int | None = None) -> None:
        code, description = redact_text(code), redact_text(description)
        super().__init__(f"{code}: {description}")
        self.portal, self.code, self.description, self.http_status = portal, code, description, http_status


class AuthUnavailable(CallqError):
    """No token for now (token endpoint unreachable or 5xx, waited too long): retry later.

    Attributes:
        portal: The portal's name.
        description: What went wrong, without secrets.
        http_status: The HTTP status, if there was an answer.
    """

    def __init__(self, *, portal: str, description: str, http_status: int | None = None) -> None:
        description = redact_text(description)
        super().__init__(description)
        self.portal, self.description, self.http_status = portal, description, http_status
