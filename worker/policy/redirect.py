"""Whether a redirect from a portal may be followed, and where a moved portal now answers. Pure.

Bitrix24 answers a request to a portal that moved to another domain with a redirect (301/302/307/
308) to the same path on the new domain, before running anything; the SDKs follow it once. callq
follows one only when it cannot leak the request's secret (a webhook code sits in the path, an
access token in the body) to anything but the portal's new address:

- the new URL is absolute and ``https`` (plain ``http`` only from a loopback ``http`` address to a
  loopback one: the sandbox), without user info, query or fragment;
- it is on another host (a redirect to the same host is not a move);
- its path is exactly the request's path (``/rest/1/<code>/voximplant.callback.start.json``):
  never a secret sent to another path.

Anything else (another path, ``http``, a relative URL, no ``Location``) is not followed: the answer
stays a non-Bitrix24 answer, whose result is unknown.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from schemas.config.loopback import is_loopback_host
from schemas.policy.moves import origin_of

REDIRECT_STATUSES = frozenset({301, 302, 307, 308})


@dataclass(frozen=True)
class Redirect:
    """What to do with a redirect: ``origin`` to send to, or ``refused`` saying why not."""

    origin: str | None
    refused: str = ""


def accept_redirect(request_url: str, location: str | None) -> Redirect:
    """Decide whether the redirect of ``request_url`` to ``location`` is a portal's move.

    Args:
        request_url: the URL the request was sent to.
        location: the answer's ``Location`` header (None if absent).

    Returns:
        The new ``scheme://host[:port]`` to send the same request to, or why it is not followed.
    """
    if not location:
        return Redirect(None, "no Location")
    try:
        old, new = urlsplit(request_url), urlsplit(location)
        old_host, new_host = old.hostname or "", new.hostname or ""
        new.port  # noqa: B018  # raises ValueError for a bad port
    except ValueError:
        return Redirect(None, "not a URL")
    if not new.scheme or not new_host:
        return Redirect(None, "not an absolute URL")
    if new.scheme != "https" and not (
        new.scheme == "http"
        and old.scheme == "http"
        and is_loopback_host(old_host)
        and is_loopback_host(new_host)
    ):
        return Redirect(None, f"{new.scheme} is not https")
    if new.username is not None or new.password is not None or new.query or new.fragment:
        return Redirect(None, "user info, query or fragment")
    if new.path != old.path:
        return Redirect(None, "another path")
    if new.netloc.lower() == old.netloc.lower():
        return Redirect(None, "the same host")
    return Redirect(origin_of(location))
