"""The pre-flight of ``callq check``: does each portal give callbacks what they need? One row per fact.

For each portal, through the same credentials and address the workers use (:mod:`worker.bitrix.portal_call`:
a webhook, or an OAuth token from the shared store; a portal that moved is followed and the move
recorded), it proves:

- ``credentials``: Bitrix24's ``scope`` method answers (the webhook or token works);
- ``scope call``, ``scope telephony``: both are granted (``scope`` lists them): callback.start needs
  ``call`` as Bitrix24's module registers it, and its page says ``telephony``;
- ``lines``, ``line X``: ``voximplant.line.get`` answers, and every line the configuration names is on it;
- ``voices``, ``voice X``: ``voximplant.tts.voices.get`` answers (the list is cached for admission),
  and every voice the configuration names is on it;
- ``address``: the portal answers at its configured address (a move fails the row: update it);
- ``halt``: no worker has halted the portal;
- ``call end handler (event.get)``: whether ``OnVoximplantCallEnd`` is bound to callq
  (:func:`worker.bitrix.events.handler_verdict`; fails only a portal that expects pushes).

It never calls ``voximplant.callback.start``; the user's permission "Outgoing call - Perform - any"
can only be proved by a call, so it is not claimed. It also compares the configuration with the one
every live worker and ``callq serve`` runs (:func:`drift_row`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

import aiohttp
from redis.asyncio import Redis
from redis.exceptions import RedisError

from schemas.config import PortalConfig, Settings, redact_webhook_url
from schemas.config.drift import credential_key, disagreements
from schemas.config.fingerprint import fingerprint
from schemas.config.registry import ConfigRegistry
from schemas.policy.moves import PortalMove, configured_origin
from schemas.store.keys import Keys
from schemas.store.portal_moves import read_move
from schemas.store.secret import read_deployment_secret
from schemas.store.voices import store_voices
from worker.bitrix.address import PortalAddresses
from worker.bitrix.codes import BitrixCode
from worker.bitrix.errors import AuthRefused, AuthUnavailable, BitrixCallError
from worker.bitrix.events import EVENTS_CHECK, PortalCalls, bound_call_end_handlers, handler_verdict
from worker.bitrix.oauth import PortalAuth
from worker.bitrix.portal_call import call_portal

DRIFT_CHECK = "same as the live processes"
"""The row that compares this configuration with the one the running workers and serve use."""

SCOPES_NEEDED = ("call", "telephony")

HINTS = {
    BitrixCode.NO_AUTH_FOUND: "the webhook is wrong, deleted or expired",
    BitrixCode.INVALID_CREDENTIALS: "no active webhook with this user id and code: wrong, deleted or expired",
    BitrixCode.INSUFFICIENT_SCOPE: "grant the webhook (or app) the scopes call and telephony",
    BitrixCode.ACCESS_DENIED: "the user lacks the permission, or the plan has no REST API",
    BitrixCode.EXPIRED_TOKEN: "the access token expired and could not be refreshed",
    BitrixCode.PAYMENT_REQUIRED: "the app's subscription has ended",
    BitrixCode.OVERLOAD_LIMIT: "Bitrix24 blocked the portal manually: ask its support",
}


@dataclass(frozen=True)
class CheckRow:
    """One check: what, and whether it passed."""

    portal: str
    check: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class Probe:
    """What the checks of a portal use: the process's session, the portals' credentials and addresses,
    and Redis (None when it does not answer: webhook portals are still checked)."""

    session: aiohttp.ClientSession
    auth: PortalAuth
    addresses: PortalAddresses
    redis: Redis | None
    keys: Keys


async def check_portal(
    probe: Probe, portal: PortalConfig, *, seen_moves: dict[str, PortalMove]
) -> list[CheckRow]:
    """Every check of one portal (``seen_moves``: the moves ``probe.addresses`` reported meanwhile)."""
    name = portal.name
    if portal.oauth is not None and probe.redis is None:
        return [CheckRow(name, "credentials", False, "OAuth tokens are kept in Redis, which does not answer")]
    rows = await _checks(probe, portal)
    rows.insert(0, await _address_row(probe, portal, seen_moves.get(name)))
    rows.append(await _halt_row(probe, portal))
    return rows


async def _checks(probe: Probe, portal: PortalConfig) -> list[CheckRow]:
    name = portal.name
    try:
        scopes = await _result(probe, portal, "scope")
    except (BitrixCallError, AuthRefused, AuthUnavailable, RedisError) as exc:
        return [CheckRow(name, "credentials", False, describe(exc))]
    how = "the OAuth token" if portal.oauth is not None else "the webhook"
    rows = [CheckRow(name, "credentials", True, f"{how} works (scope answers)")]
    granted = {str(scope) for scope in scopes} if isinstance(scopes, list) else set()
    for scope in SCOPES_NEEDED:
        ok = scope in granted
        detail = (
            "granted"
            if ok
            else f"not granted: add it to {how} (granted: {', '.join(sorted(granted)) or 'none'})"
        )
        rows.append(CheckRow(name, f"scope {scope}", ok, detail))
    rows += await _listed(probe, portal, "lines", "voximplant.line.get", sorted(portal.lines))
    voices = sorted({line.voice for line in portal.lines.values() if line.voice})
    rows += await _listed(probe, portal, "voices", "voximplant.tts.voices.get", voices)
    rows.append(await _events_row(probe, portal))
    return rows


async def _events_row(probe: Probe, portal: PortalConfig) -> CheckRow:
    """Whether ``OnVoximplantCallEnd`` is bound (``event.get``), read against what the portal expects."""
    handlers: list[str] | None = None
    error: str | None = None
    if portal.calls.follow:
        try:
            ctx = PortalCalls(probe.session, probe.auth, probe.addresses)
            handlers = await bound_call_end_handlers(ctx, portal)
        except (BitrixCallError, AuthRefused, AuthUnavailable, RedisError) as exc:
            error = describe(exc)
    ok, detail = handler_verdict(
        oauth=portal.oauth is not None,
        follow=portal.calls.follow,
        token_set=bool(portal.calls.event_token),
        handlers=handlers,
        error=error,
    )
    return CheckRow(portal.name, EVENTS_CHECK, ok, detail)


async def _listed(
    probe: Probe, portal: PortalConfig, what: str, method: str, wanted: list[str]
) -> list[CheckRow]:
    """A row for the list ``method`` answers, and one per configured item on it."""
    name, item = portal.name, what.removesuffix("s")
    try:
        offered = await _result(probe, portal, method)
    except (BitrixCallError, AuthRefused, AuthUnavailable, RedisError) as exc:
        why = describe(exc)
        rows = [CheckRow(name, f"{what} ({method})", False, why)]
        return rows + [CheckRow(name, f"{item} {key}", False, f"not verified: {why}") for key in wanted]
    listing = {str(k): str(v) for k, v in offered.items()} if isinstance(offered, dict) else {}
    if what == "voices" and probe.redis is not None:
        await store_voices(probe.redis, probe.keys, name, listing)
    rows = [CheckRow(name, f"{what} ({method})", True, f"{len(listing)} {what} on the portal")]
    for key in wanted:
        found = key in listing
        missing = f"not on the portal (`callq {what} {name}` lists them)"
        rows.append(CheckRow(name, f"{item} {key}", found, listing[key] if found else missing))
    return rows


async def _result(probe: Probe, portal: PortalConfig, method: str) -> object:
    body = await call_portal(probe.session, portal, method, auth=probe.auth, addresses=probe.addresses)
    return body.get("result")


async def _address_row(probe: Probe, portal: PortalConfig, seen: PortalMove | None) -> CheckRow:
    """Whether the portal answers where the configuration says (a recorded or just seen move fails it)."""
    configured = redact_webhook_url(portal.webhook_url) if portal.webhook_url else configured_origin(portal)
    move = seen
    if move is None and probe.redis is not None:
        try:
            move = await read_move(probe.redis, probe.keys, portal.name)
        except RedisError:
            move = None
    if move is None or not move.applies_to(portal):
        return CheckRow(portal.name, "address", True, configured)
    key = "webhook_url" if portal.webhook_url else "oauth.domain"
    detail = (
        f"the portal moved from {move.moved_from} to {move.moved_to}: update {key} of portal {portal.name!r} "
        "(workers follow the move meanwhile)"
    )
    return CheckRow(portal.name, "address", False, detail)


async def _halt_row(probe: Probe, portal: PortalConfig) -> CheckRow:
    """Whether a worker has halted the portal (Bitrix24 refused it as a whole)."""
    if probe.redis is None:
        return CheckRow(portal.name, "halt", True, "not known: Redis does not answer")
    try:
        raw = await probe.redis.get(probe.keys.portal_halt(portal.name))
    except RedisError:
        return CheckRow(portal.name, "halt", True, "not known: Redis does not answer")
    if raw is None:
        return CheckRow(portal.name, "halt", True, "not halted")
    reason = json.loads(raw)
    detail = (
        f"halted since {reason.get('since')}: {reason.get('code')}: {reason.get('description')}; "
        f"once fixed, `callq resume {portal.name}`"
    )
    return CheckRow(portal.name, "halt", False, detail)


def describe(exc: Exception) -> str:
    """What a failed probe says, with what to do about a known refusal."""
    if isinstance(exc, RedisError):
        return f"Redis does not answer ({type(exc).__name__})"
    code = BitrixCode.of(getattr(exc, "code", None))
    hint = HINTS.get(code) if code else None
    return f"{exc}: {hint}" if hint else str(exc)


async def drift_row(settings: Settings, redis: Redis | None) -> CheckRow:
    """Does this configuration match the one every live worker and ``callq serve`` runs?

    Reads Redis only (the registry of :mod:`schemas.config.registry`); creates nothing there.
    """
    if redis is None:
        return CheckRow("-", DRIFT_CHECK, False, "cannot compare: Redis is unreachable")
    keys = Keys(settings.key_prefix)
    try:
        secret = await read_deployment_secret(redis, keys)
        registry = ConfigRegistry(redis, keys)
        live = await registry.live()
        if not live:
            return CheckRow("-", DRIFT_CHECK, True, "no live worker or serve to compare with")
        mine = fingerprint(settings, credential_key=credential_key(secret or b""))
        found = await disagreements(registry, mine, live)
    except (RedisError, OSError) as exc:
        return CheckRow(
            "-", DRIFT_CHECK, False, f"cannot compare: Redis is unreachable ({type(exc).__name__})"
        )
    if secret is None:  # lost: credential digests cannot be compared
        found = [replace(d, keys=tuple(k for k in d.keys if not k.endswith(".credentials"))) for d in found]
        found = [d for d in found if d.keys]
    if not found:
        return CheckRow("-", DRIFT_CHECK, True, f"the same as every live process ({len(live)})")
    detail = "; ".join(f"{', '.join(d.keys)} differ from {', '.join(d.processes)}" for d in found)
    return CheckRow("-", DRIFT_CHECK, False, detail)
