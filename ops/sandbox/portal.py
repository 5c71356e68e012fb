"""The sandbox's data: portals with their webhooks, lines, voices, scopes and permissions, and recorded calls."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ops.sandbox.voices import DOCUMENTED_VOICES

DEFAULT_LINES: Mapping[str, str] = {"reg1332": "Sandbox line 1", "reg1333": "Sandbox line 2"}
DEFAULT_USER_ID = 1
DEFAULT_CODE = "sandboxsecret"

SCOPES = ("call", "telephony", "crm", "user", "im", "entity")
"""The scopes the sandbox knows (`scope` with `full=true`); a portal's webhooks have some of them."""
DEFAULT_SCOPES = frozenset({"call", "telephony"})
"""What a webhook for callbacks is given: `call` (callback.start) and `telephony` (lines, voices)."""
PERMISSIONS: Mapping[str, str] = {
    "outgoing_call": "Outgoing call - Perform - any",
    "manage_numbers": "Manage numbers - modify",
}
"""The telephony permissions the sandbox checks, by id, with their name in Bitrix24's settings."""
AUTH_REFUSALS = ("NO_AUTH_FOUND", "INVALID_CREDENTIALS")
"""The 401 codes Bitrix24's docs give for refused webhook credentials."""
OPERATING_LIMIT_S = 480.0
"""Bitrix24's documented per-method execution-time limit, per `OPERATING_WINDOW_S`."""
OPERATING_WINDOW_S = 600.0


def _default_lines() -> dict[str, str]:
    return dict(DEFAULT_LINES)


def _default_voices() -> dict[str, str]:
    return dict(DOCUMENTED_VOICES)


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
        voices: Voice id to description, as `voximplant.tts.voices.get` returns them (default:
            the list on Bitrix24's page for the method).
        scopes: The scopes its webhooks and apps were given (`call`, `telephony`, ...); a method
            whose scope is missing answers 401 `insufficient_scope`.
        permissions: The telephony permissions of the webhooks' user (`PERMISSIONS`); a method
            needing one that is missing answers 403 `ACCESS_DENIED`.
        auth_refusal: `NO_AUTH_FOUND` or `INVALID_CREDENTIALS`: every webhook of the portal is
            refused with it (deleted, deactivated); None (default) accepts them.
        moved_to: Where the portal moved, `scheme://host[:port]` (optionally with a path prefix):
            a request that arrives on another host answers 302 to there, same path; None: not moved.
        operating_limit_s: Seconds of execution time a method may use per `operating_window_s`;
            past it the method answers 429 `OPERATION_TIME_LIMIT`.
        operating_window_s: The window of the execution-time limit (Bitrix24: 10 minutes).
        processing_s: Execution time counted for each call (None: the real time it took), so
            that tests reach the limit in a few calls.
    """

    name: str
    webhooks: set[tuple[int, str]] = field(default_factory=lambda: {(DEFAULT_USER_ID, DEFAULT_CODE)})
    lines: dict[str, str] = field(default_factory=_default_lines)
    rest_lines: set[str] = field(default_factory=set)
    rate: float = 2.0
    burst: int = 50
    oauth_clients: dict[str, str] = field(default_factory=dict)
    token_lifetime_s: float = 3600.0
    voices: dict[str, str] = field(default_factory=_default_voices)
    scopes: set[str] = field(default_factory=lambda: set(DEFAULT_SCOPES))
    permissions: set[str] = field(default_factory=lambda: set(PERMISSIONS))
    auth_refusal: str | None = None
    moved_to: str | None = None
    operating_limit_s: float = OPERATING_LIMIT_S
    operating_window_s: float = OPERATING_WINDOW_S
    processing_s: float | None = None

    def __post_init__(self) -> None:
        if not self.webhooks:
            raise ValueError(f"portal {self.name!r} needs at least one webhook")
        if self.rate <= 0 or self.burst < 1:
            raise ValueError(f"portal {self.name!r}: rate must be > 0 and burst >= 1")
        if self.token_lifetime_s <= 0:
            raise ValueError(f"portal {self.name!r}: token_lifetime_s must be > 0")
        check_switches(self)

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
                "oauth_clients": {client_id: client_secret}, "token_lifetime_s"}` and the
                switches (`SWITCHES`); all but `name` are optional.

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
                **switches_of(spec),
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
            "voices": dict(self.voices),
            "scopes": sorted(self.scopes),
            "permissions": sorted(self.permissions),
            "auth_refusal": self.auth_refusal,
            "moved_to": self.moved_to,
            "operating_limit_s": self.operating_limit_s,
            "operating_window_s": self.operating_window_s,
            "processing_s": self.processing_s,
        }

    def with_switches(self, spec: Mapping[str, Any]) -> SandboxPortal:
        """This portal with the switches of `spec` changed (the control API's `PATCH`; see
        `switches_of`); its webhooks, lines and OAuth apps stay.

        Raises:
            ValueError: If a switch has a wrong value, or `spec` names something else.
        """
        unknown = sorted(set(spec) - set(SWITCHES))
        if unknown:
            raise ValueError(f"not a switch: {', '.join(unknown)} (switches: {', '.join(SWITCHES)})")
        return replace(self, **switches_of(spec))


SWITCHES = (
    "voices",
    "scopes",
    "permissions",
    "auth_refusal",
    "moved_to",
    "operating_limit_s",
    "operating_window_s",
    "processing_s",
)
"""The fields the control API and the command line switch on a running portal."""


def switches_of(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The switches `spec` sets, as `SandboxPortal` fields (absent ones are left out).

    Raises:
        ValueError: If one has a wrong shape.
    """
    found: dict[str, Any] = {}
    try:
        if "voices" in spec:
            found["voices"] = {str(k): str(v) for k, v in spec["voices"].items()}
        for key in ("scopes", "permissions"):
            if key in spec:
                found[key] = {str(item) for item in spec[key]}
        for key in ("auth_refusal", "moved_to"):
            if key in spec:
                found[key] = None if spec[key] in (None, "") else str(spec[key])
        for key in ("operating_limit_s", "operating_window_s"):
            if key in spec:
                found[key] = float(spec[key])
        if "processing_s" in spec:
            found["processing_s"] = None if spec["processing_s"] is None else float(spec["processing_s"])
    except (TypeError, AttributeError, ValueError) as exc:
        raise ValueError(f"a switch has a wrong value: {exc}") from exc
    return found


def check_switches(portal: SandboxPortal) -> None:
    """Fail unless the portal's switches make sense.

    Raises:
        ValueError: naming the switch.
    """
    name = portal.name
    if portal.auth_refusal is not None and portal.auth_refusal not in AUTH_REFUSALS:
        raise ValueError(f"portal {name!r}: auth_refusal must be one of {', '.join(AUTH_REFUSALS)} or null")
    if unknown := sorted(portal.permissions - set(PERMISSIONS)):
        raise ValueError(f"portal {name!r}: unknown permissions {unknown} (known: {sorted(PERMISSIONS)})")
    if unknown := sorted(portal.scopes - set(SCOPES)):
        raise ValueError(f"portal {name!r}: unknown scopes {unknown} (known: {list(SCOPES)})")
    if portal.moved_to is not None and not portal.moved_to.startswith(("http://", "https://")):
        raise ValueError(f"portal {name!r}: moved_to must be an http(s) URL, got {portal.moved_to!r}")
    if portal.operating_limit_s <= 0 or portal.operating_window_s <= 0:
        raise ValueError(f"portal {name!r}: operating_limit_s and operating_window_s must be > 0")
    if portal.processing_s is not None and portal.processing_s < 0:
        raise ValueError(f"portal {name!r}: processing_s must be >= 0")


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
        fault: The kind of injected fault, if any, `rate_limit` for a bucket refusal, `moved` for a
            redirect of a moved portal, `scope`, `permission`, `auth` or `operating` for a refusal
            of the portal's switches.
        host: The Host the request was sent to (`127.0.0.1:8024`).
        path: The request's path (`/rest/1/<code>/voximplant.callback.start.json`).
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
    host: str = ""
    path: str = ""

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
            "host": self.host,
            "path": self.path,
        }
