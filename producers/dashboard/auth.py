"""Who uses the dashboard: a login with one of ``callq serve``'s API tokens, kept as a session.

- **Roles.** A token with ``access = "write"`` (and every token of the plain ``api_tokens`` list) is an
  *operator*: it may schedule, import, cancel, reschedule, replay and purge. A token with
  ``access = "read"`` is *read-only*: it sees the pages (its portals only) and no button that changes
  anything; a POST from it is refused ``403`` all the same. The same scopes as the HTTP API, so one
  token means one thing everywhere.
- **Session.** The login form posts the token once; the server keeps a session in Redis
  (``{p}:session:{id}``, JSON: the token's name and fingerprint, never the token) whose random id
  (256 bits) is the cookie: ``HttpOnly``, ``SameSite=Strict``, ``Path=/dashboard``, ``Secure`` behind HTTPS. Idle for
  :data:`SESSION_IDLE_S`, it expires; logout deletes it. The session keeps a fingerprint of the token
  (:func:`token_fingerprint`, keyed by the session id), checked on each request: a token removed from
  the configuration, or given another value under the same name, ends its sessions at the next request.
- **CSRF.** Every session has a random CSRF token; every form that changes something carries it and
  every POST is refused ``403`` unless it matches (compared in constant time), and unless its
  ``Origin``, when sent, is one this server allows (scheme, host and port: its ``--public-url``, or
  its own). The login form has no session yet: its POST is checked for the ``Origin`` alone (a
  login CSRF would log a victim in as the attacker).
- **Who did it.** Every action is logged (``dashboard.*`` events) with the token's name.
"""

from __future__ import annotations

import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Literal

import structlog
from aiohttp import hdrs, web
from redis.asyncio import Redis

from producers.http.guards import GUARD, HttpProblem, allowed_origins, match_token, parse_origin
from schemas.config import ApiToken
from schemas.store.keys import Keys

log = structlog.get_logger("callq.dashboard")

COOKIE = "callq_session"
SESSION_IDLE_S = 8 * 3600
"""A working day: a session left idle longer must log in again."""
ANONYMOUS = ApiToken(name="anonymous", token="", portals=None, access="write")
"""Who uses the dashboard of a ``callq serve --no-auth`` (loopback only, no token configured)."""

Role = Literal["operator", "read-only"]


@dataclass(frozen=True)
class Session:
    """A logged-in user: the token it logged in with (its name, scope and access) and its CSRF token."""

    session_id: str
    caller: ApiToken
    csrf: str

    @property
    def role(self) -> Role:
        """``operator`` for a write token, else ``read-only``."""
        return "operator" if self.caller.may_write else "read-only"

    @property
    def may_act(self) -> bool:
        """Whether it may change anything."""
        return self.caller.may_write


def _tokens(request: web.Request) -> tuple[tuple[bytes, ApiToken], ...]:
    return request.app[GUARD].tokens


async def log_in(request: web.Request, *, redis: Redis, keys: Keys, given: str) -> Session | None:
    """Check ``given`` against the tokens; on a match, store a new session and return it."""
    tokens = _tokens(request)
    if tokens:
        caller = (
            match_token(given.strip().encode("utf-8", "surrogateescape"), tokens) if given.strip() else None
        )
    else:
        caller = ANONYMOUS
    if caller is None:
        log.info("dashboard.login_refused")
        return None
    session = Session(secrets.token_urlsafe(32), caller, secrets.token_urlsafe(32))
    value = json.dumps(
        {"name": caller.name, "csrf": session.csrf, "fp": token_fingerprint(session.session_id, caller)}
    )
    await redis.set(keys.dashboard_session(session.session_id), value, ex=SESSION_IDLE_S)
    log.info("dashboard.login", caller=caller.name, role=session.role)
    return session


async def current(request: web.Request, *, redis: Redis, keys: Keys) -> Session | None:
    """The session of the request's cookie (renewed), or None."""
    session_id = request.cookies.get(COOKIE, "")
    if not session_id or len(session_id) > 100:
        return None
    key = keys.dashboard_session(session_id)
    raw = await redis.getex(key, ex=SESSION_IDLE_S)
    if raw is None:
        return None
    data = json.loads(raw)
    tokens = _tokens(request)
    if not tokens:
        caller: ApiToken | None = ANONYMOUS
    else:
        caller = next((token for _, token in tokens if token.name == data["name"]), None)
    if caller is not None and not hmac.compare_digest(
        str(data.get("fp", "")).encode(), token_fingerprint(session_id, caller).encode()
    ):
        caller = None  # the token of that name is another now (rotated): its old sessions end
    if caller is None:
        await redis.delete(key)
        return None
    return Session(session_id, caller, data["csrf"])


def token_fingerprint(session_id: str, caller: ApiToken) -> str:
    """What a session keeps of the token it logged in with: HMAC-SHA256 of the token keyed by the
    session's id (never the token itself). Checked on each request, so that a token whose value
    changed (rotated under the same name) or was removed ends its sessions at once."""
    return hmac.new(
        session_id.encode(), caller.token.encode("utf-8", "surrogateescape"), "sha256"
    ).hexdigest()


async def log_out(session: Session, *, redis: Redis, keys: Keys) -> None:
    """End ``session``."""
    await redis.delete(keys.dashboard_session(session.session_id))
    log.info("dashboard.logout", caller=session.caller.name)


def set_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    """The session cookie: HttpOnly, SameSite=Strict, the dashboard's path, Secure behind HTTPS."""
    response.set_cookie(
        COOKIE,
        session.session_id,
        path="/dashboard",
        httponly=True,
        samesite="Strict",
        secure=request.secure,
        max_age=SESSION_IDLE_S,
    )


def check_origin(request: web.Request, *, caller: str | None, action: str) -> None:
    """Refuse (``403``) a POST whose ``Origin``, when sent, is not one this server allows
    (:func:`producers.http.guards.allowed_origins`): scheme, host and port compared."""
    origin = request.headers.get(hdrs.ORIGIN)
    if origin is not None and parse_origin(origin) not in allowed_origins(request):
        log.warning("dashboard.refused", caller=caller, action=action, reason="origin")
        raise HttpProblem(
            403,
            "FORBIDDEN",
            "a request from another origin (behind a proxy, give callq serve --public-url with the "
            "address browsers use)",
        )


def check_post(request: web.Request, session: Session, form_csrf: str | None, *, action: str) -> None:
    """Refuse (``403``) a state change by a read-only session, with a wrong CSRF token, or from
    another origin."""
    check_origin(request, caller=session.caller.name, action=action)
    if not form_csrf or not hmac.compare_digest(form_csrf.encode(), session.csrf.encode()):
        log.warning("dashboard.refused", caller=session.caller.name, action=action, reason="csrf")
        raise HttpProblem(403, "CSRF", "the form's CSRF token is missing or wrong: reload the page")
    if not session.may_act:
        log.warning("dashboard.refused", caller=session.caller.name, action=action, reason="read-only")
        raise HttpProblem(403, "FORBIDDEN", 'this token may only read (access = "read")')
