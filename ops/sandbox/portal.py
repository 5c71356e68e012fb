"""The sandbox's data: portals with their webhooks and lines, and recorded calls."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_LINES: Mapping[str, str] = {"reg1332": "Sandbox line 1", "reg1333": "Sandbox line 2"}
DEFAULT_USER_ID = 1
DEFAULT_CODE = "sandboxsecret"


def _default_lines() -> dict[str, str]:
    return dict(DEFAULT_LINES)


@dataclass(slots=True)
class SandboxPortal:
    """One fake Bitrix24 portal.

    Attributes:
        name: The portal's name in callq's config, e.g. `default`.
        webhooks: Inbound webhooks as `(user_id, code)`; any of them authenticates a request.
        lines: Line id to display name, as `voximplant.line.get` returns them.
        rest_lines: Lines of type REST app: `callback.start` answers `CALL_ID: null` for them.
        rate: Leaky-bucket drain rate, requests per second.
        burst: Leaky-bucket size.
        oauth_clients: OAuth applications installed on the portal, `client_id -> client_secret`;
            empty (the default) means the portal takes webhooks only (see `ops.sandbox.oauth`).
        token_lifetime_s: Lifetime of the access tokens it issues (Bitrix24: one hour).
    """

    name: str
    webhooks: set[tuple[int, str]] = field(default_factory=lambda: {(DEFAULT_USER_ID, DEFAULT_CODE)})
    lines: dict[str, str] = field(default_factory=_default_lines)
    rest_lines: set[str] = field(default_factory=set)
    rate: float = 2.0
    burst: int = 50
    oauth_clients: dict[str, str] = field(default_factory=dict)
    token_lifetime_s: float = 3600.0

    def __post_init__(self) -> None:
        if not self.webhooks:
            raise ValueError(f"portal {self.name!r} needs at least one webhook")
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"portal {self.name!r}: rate must be > 0 and burst >= 1")
        if self.token_lifetime_s <= 0:
            raise ValueError(f"portal {self.name!r}: token_lifetime_s must be > 0")

    def first_webhook(self) -> tuple[int, str]:
        """Return the webhook used for URLs: the smallest `(user_id, code)` pair."""
        return min(self.webhooks)

    def has_webhook(self, user_id: int, code: str) -> bool:
        """Say whether `(user_id, code)` is one of this portal's webhooks."""
        return (user_id, code) in self.webhooks

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any]) -> SandboxPortal:
        """Build a portal from its JSON form (control API `POST /_sandbox/portals`).

        Args:
            spec: `{"name", "webhooks": [[user_id, code] | {"user_id", "code"}],
                "lines": {id: name}, "rest_lines": [id], "rate", "burst",
                "oauth_clients": {client_id: client_secret}, "token_lifetime_s"}`; all but
                `name` are optional.

        Returns:
            The portal.

        Raises:
            ValueError: If a field is missing or has a wrong shape.
        """
        try:
            webhooks = {_parse_webhook(item) for item in spec.get("webhooks", [])}
            lines = spec.get("lines")
            return cls(
                name=str(spec["name"]),
                webhooks=webhooks or {(DEFAULT_USER_ID, DEFAULT_CODE)},
                lines=_default_lines() if lines is None else {str(k): str(v) for k, v in lines.items()},
                rest_lines={str(line) for line in spec.get("rest_lines", [])},
                rate=float(spec.get("rate", 2.0)),
                burst=int(spec.get("burst", 50)),
                oauth_clients={str(k): str(v) for k, v in spec.get("oauth_clients", {}).items()},
                token_lifetime_s=float(spec.get("token_lifetime_s", 3600.0)),
            )
        except KeyError as exc:
            raise ValueError(f"portal spec is missing field {exc.args[0]!r}") from exc
        except (TypeError, AttributeError) as exc:
            raise ValueError(f"portal spec has a field of the wrong shape: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form that `from_dict` reads back."""
        return {
            "name": self.name,
            "webhooks": [[user_id, code] for user_id, code in sorted(self.webhooks)],
            "lines": dict(self.lines),
            "rest_lines": sorted(self.rest_lines),
            "rate": self.rate,
            "burst": self.burst,
            "oauth_clients": dict(self.oauth_clients),
            "token_lifetime_s": self.token_lifetime_s,
        }


def _parse_webhook(item: Any) -> tuple[int, str]:
    if isinstance(item, Mapping):
        return int(item["user_id"]), str(item["code"])
    user_id, code = item
    return int(user_id), str(code)


@dataclass(frozen=True, slots=True)
class RecordedCall:
    """One REST request as the sandbox saw and answered it.

    Attributes:
        portal: The portal the webhook (or OAuth access token, even expired) belongs to; None
            if it was unknown.
        method: Lower-cased method name without a `.json` suffix.
        params: The request's parameters as received (JSON types kept, form values as str).
        received_monotonic: When it arrived, on the sandbox's monotonic clock.
        received_wall: When it arrived, as unix time.
        status: The HTTP status answered (for a delayed answer: about to be answered, even
            if the client gives up first); None when no HTTP answer is sent (hang, reset).
        executed: Whether a real portal would have placed the call.
        call_id: The CALL_ID generated when executed (None for REST-app lines and failures).
        fault: The kind of injected fault, if any, or `rate_limit` for a bucket refusal.
    """

    portal: str | None
    method: str
    params: dict[str, Any]
    received_monotonic: float
    received_wall: float
    status: int | None
    executed: bool
    call_id: str | None = None
    fault: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form served by `GET /_sandbox/calls`."""
        return {
            "portal": self.portal,
            "method": self.method,
            "params": self.params,
            "received_monotonic": self.received_monotonic,
            "received_wall": self.received_wall,
            "status": self.status,
            "executed": self.executed,
            "call_id": self.call_id,
            "fault": self.fault,
        }
