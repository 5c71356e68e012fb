"""A portal that moved to another address: the record every worker follows, and URL origins. Pure.

When Bitrix24 moves a portal to another domain, it answers requests to the old one with a redirect
(followed by :mod:`worker.bitrix.address` under the rules of :mod:`worker.policy.redirect`). The move
is remembered as *from* one origin *to* another (``scheme://host[:port]``: no path, so no webhook
code), and applies to a configured address only while that address is still on the old origin: once
ops update the configuration, the record no longer applies by itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from schemas.config import PortalConfig


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lower-cased (no user info, path or query)."""
    parts = urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower().rpartition('@')[2]}"


def configured_origin(portal: PortalConfig) -> str:
    """The origin the configuration sends ``portal``'s requests to (its webhook, or its OAuth domain)."""
    if portal.webhook_url is not None:
        return origin_of(portal.webhook_url)
    assert portal.oauth is not None  # PortalConfig holds exactly one of the two
    return f"https://{portal.oauth.domain.lower()}"


@dataclass(frozen=True)
class PortalMove:
    """A portal answered from ``moved_from`` with a redirect to ``moved_to`` (at ``since``, RFC 3339)."""

    moved_from: str
    moved_to: str
    since: str

    def rebase(self, url: str) -> str:
        """``url`` on the new origin if it is on the old one, else unchanged."""
        if origin_of(url) != self.moved_from:
            return url
        return self.moved_to + urlsplit(url).path

    def applies_to(self, portal: PortalConfig) -> bool:
        """Whether the configuration still names the old address (ops should update it)."""
        return configured_origin(portal) == self.moved_from

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps({"from": self.moved_from, "to": self.moved_to, "since": self.since})

    def to_dict(self) -> dict[str, str]:
        """As ``callq status --json`` and ``callq check`` show it."""
        return {"from": self.moved_from, "to": self.moved_to, "since": self.since}

    @classmethod
    def from_json(cls, raw: Any) -> PortalMove | None:
        """Read the stored form back; None if it is absent or not one."""
        try:
            data = json.loads(raw) if raw else None
            return None if data is None else cls(str(data["from"]), str(data["to"]), str(data["since"]))
        except (ValueError, KeyError, TypeError):
            return None
