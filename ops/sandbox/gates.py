"""The checks a portal's switches add before a method runs, as pure functions: a portal that moved
answers a redirect, a refused webhook a 401, a method past its execution-time limit a 429.

`ops.sandbox.state.Sandbox` calls them in Bitrix24's order (the redirect at the web server, before
the leaky bucket counts the request; then the credentials, the scope, the limit, the method).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from ops.sandbox.envelope import OperatingMeter, time_envelope
from ops.sandbox.methods import error_body
from ops.sandbox.portal import SandboxPortal
from ops.sandbox.reply import Reply

AUTH_DESCRIPTIONS = {
    "NO_AUTH_FOUND": "Wrong authorization data",
    "INVALID_CREDENTIALS": "Invalid request credentials",
}
"""Bitrix24's descriptions of its two 401 refusals of webhook credentials."""


def moved_reply(portal: SandboxPortal, host: str, path: str) -> Reply | None:
    """A 302 to the portal's new address (same path) for a request that reached the old one, else None.

    Args:
        portal: the portal the request's credentials belong to.
        host: the request's Host header.
        path: the request's path.
    """
    if portal.moved_to is None:
        return None
    target = urlsplit(portal.moved_to)
    if host.lower() == target.netloc.lower() and not target.path.strip("/"):
        return None
    return Reply(302, text="", content_type="text/html", location=portal.moved_to.rstrip("/") + path)


def auth_refusal_reply(portal: SandboxPortal) -> Reply | None:
    """The 401 of a portal whose webhooks are switched to refused (deleted, deactivated), else None."""
    if portal.auth_refusal is None:
        return None
    return Reply(401, error_body(portal.auth_refusal, AUTH_DESCRIPTIONS[portal.auth_refusal]))


def operating_reply(portal: SandboxPortal, meter: OperatingMeter, now_wall: float) -> Reply | None:
    """429 `OPERATION_TIME_LIMIT` while the method's summed execution time exceeds the portal's limit.

    The refusal carries the `time` object, so its `operating_reset_at` says when to come back.
    """
    operating, reset_at = meter.total(now_wall)
    if operating <= portal.operating_limit_s:
        return None
    body = error_body("OPERATION_TIME_LIMIT", "Method is blocked due to operation time limit")
    body["time"] = time_envelope(now_wall, now_wall, operating, reset_at)
    return Reply(429, body)
