"""A fingerprint of the configuration that matters for jobs, to find processes that disagree. Pure.

Every worker and ``callq serve`` admits, schedules, paces or calls jobs by its own configuration,
so two processes of one deployment with different portals, hours or limits quietly disagree: one
admits a job the other ends ``dead PORTAL_NOT_CONFIGURED``, or schedules it by another calendar.
The fingerprint has one part per setting that decides scheduling, pacing, dedupe and calls: each
portal's credentials, time zone, region, rate and burst, holidays, closed dates, attempts, windows,
``retry_unknown``, ``operating_budget``, hours and each line; and the record retention and outcome stream cap. A part is
a short digest of its value; credentials are digested with a key derived from the deployment's
secret (an HMAC), so the fingerprint holds no secret and cannot be used to check a guess of one
without Redis. Comparing the parts of two fingerprints names what differs, never a value.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.config import PortalConfig, Settings

DIGEST_HEX = 16
"""64 bits: enough to tell two values apart, short in Redis and in logs."""


@dataclass(frozen=True)
class Fingerprint:
    """A configuration's fingerprint.

    Attributes:
        digest: of every part together: equal digests, equal configurations (as far as jobs go).
        parts: dotted key (``portals.acme.rate``) -> digest of its value.
    """

    digest: str
    parts: Mapping[str, str]


def fingerprint(settings: Settings, *, credential_key: bytes) -> Fingerprint:
    """The fingerprint of ``settings``.

    Args:
        settings: the loaded configuration.
        credential_key: keys the digest of each portal's credentials (from the deployment's secret).

    Returns:
        Its digest and parts.
    """
    values: dict[str, Any] = {
        "outcome_retention": float(settings.outcome_retention_s),  # 600 and 600.0 are one setting
        "outcomes_maxlen": settings.outcomes_maxlen,
    }
    if settings.start_replicas:  # only when set: a process from before the setting agrees otherwise
        values["start_replicas"] = settings.start_replicas
        values["start_replicas_timeout"] = float(settings.start_replicas_timeout_s)
    secrets: dict[str, Any] = {}
    for name, portal in settings.portals.items():
        for key, value in _portal_values(portal).items():
            values[f"portals.{name}.{key}"] = value
        secrets[f"portals.{name}.credentials"] = _credentials(portal)
    parts = {key: _digest(value) for key, value in values.items()}
    parts |= {key: _digest(value, key=credential_key) for key, value in secrets.items()}
    parts = dict(sorted(parts.items()))
    return Fingerprint(digest=_digest(parts), parts=parts)


def differences(here: Mapping[str, str], there: Mapping[str, str]) -> list[str]:
    """What differs between two fingerprints' parts, from ``here``'s point of view, sorted.

    A portal configured on one side only is one entry, ``portals.NAME (only here)`` or
    ``portals.NAME (only there)``; otherwise each differing dotted key (a line on one side only is
    a differing key too).
    """
    portals_here, portals_there = _portals(here), _portals(there)
    found = [f"portals.{name} (only here)" for name in portals_here - portals_there]
    found += [f"portals.{name} (only there)" for name in portals_there - portals_here]
    skip = portals_here ^ portals_there
    for key in set(here) | set(there):
        if here.get(key) != there.get(key) and _portal_of(key) not in skip:
            found.append(key)
    return sorted(found)


def _portal_values(portal: PortalConfig) -> dict[str, Any]:
    lines = {
        f"lines.{line_id}": {
            "hours": _hours(line.hours),
            "min_interval": float(line.min_interval_s),
            "text_to_pronounce": line.text_to_pronounce,
            "voice": line.voice,
        }
        for line_id, line in portal.lines.items()
    }
    return {
        "timezone": portal.timezone.key,
        "default_region": portal.default_region,
        "rate": float(portal.rate),
        "burst": portal.burst,
        "holidays": portal.holidays,
        "closed_dates": sorted(day.isoformat() for day in portal.closed_dates),
        "max_attempts": portal.max_attempts,
        "dedupe_window": float(portal.dedupe_window_s),
        "default_deadline": float(portal.default_deadline_s),
        "retry_unknown": portal.retry_unknown,
        "operating_budget": float(portal.operating_budget_s),
        "hours": _hours(portal.hours),
        **lines,
    }


def _hours(hours: Mapping[int, Any] | None) -> Any:
    return (
        None
        if hours is None
        else {str(day): [list(window) for window in hours[day]] for day in sorted(hours)}
    )


def _credentials(portal: PortalConfig) -> Any:
    oauth = portal.oauth
    if oauth is None:
        return {"webhook_url": portal.webhook_url}
    return {
        "client_id": oauth.client_id,
        "client_secret": oauth.client_secret,
        "refresh_token": oauth.refresh_token,
        "domain": oauth.domain,
        "token_url": oauth.token_url,
    }


def _digest(value: Any, *, key: bytes | None = None) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":")).encode()
    digest = hmac.new(key, text, hashlib.sha256) if key is not None else hashlib.sha256(text)
    return digest.hexdigest()[:DIGEST_HEX]


def _portal_of(key: str) -> str | None:
    head, _, rest = key.partition(".")
    return rest.split(".", 1)[0] if head == "portals" else None


def _portals(parts: Mapping[str, str]) -> set[str]:
    return {name for key in parts if (name := _portal_of(key)) is not None}
