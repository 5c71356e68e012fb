"""When a request may still leave: shared by a job's attempt (:mod:`worker.jobs.run`) and a redial
(:mod:`worker.calls.redial`).

The line's closing time or the job's deadline, whichever is first, is looked up once, when the
attempt (or redial) is marked started (:func:`window_end`); each ``send()`` (a redirect of a moved
portal or a token refresh sends again) looks at it and raises :class:`WindowClosed` past it, and
bounds its connection set-up by it (:func:`within`). A :class:`NotSent` request never left: the job
tries again (the attempt is not spent), at the line's next opening for a closed window.
"""

from __future__ import annotations

from datetime import datetime

import aiohttp

from schemas.policy.calendar import Calendar, open_until
from schemas.wire.job import CallbackJob
from worker.bitrix.client import CallbackStarted, start_callback
from worker.bitrix.errors import TransportError
from worker.bitrix.oauth_tokens import Credentials

EVENT_LEASE_RAN_OUT = "job.lease_ran_out"
LEASE_RAN_OUT = "not sent: the attempt's lease could have lapsed before the request left"

EVENT_SLOT_LAPSED = "job.slot_lapsed"
SLOT_LAPSED = "not sent: the request would have left too late for its rate slot"

EVENT_WINDOW_CLOSED = "job.window_closed"
WINDOW_CLOSED = "not sent: the line closed, or the job's deadline passed, before the request could leave"


class NotSent(TransportError):
    """The request must not leave now: it is not sent, and the job tries again (attempt not spent).

    Attributes:
        event: what the worker logs.
        late_s: how far past the moment the request could still leave it is.
    """

    event = EVENT_LEASE_RAN_OUT

    def __init__(self, description: str, *, late_s: float) -> None:
        super().__init__(phase="connect", description=description)
        self.late_s = late_s


class LeaseRanOut(NotSent):
    """The attempt's lease may lapse before its request could leave."""

    def __init__(self, *, late_s: float) -> None:
        super().__init__(LEASE_RAN_OUT, late_s=late_s)


class SlotLapsed(NotSent):
    """The request would leave later than its rate slot allows (the worker was frozen or starved
    since START): it would bunch with on-time requests, so it is not sent; the job takes new slots."""

    event = EVENT_SLOT_LAPSED

    def __init__(self, *, late_s: float) -> None:
        super().__init__(SLOT_LAPSED, late_s=late_s)


class WindowClosed(NotSent):
    """The line closed, or the job's deadline passed, since START (a slow redirect or token refresh
    in between): the next run puts the job back until the line opens, or ends it ``expired``."""

    event = EVENT_WINDOW_CLOSED

    def __init__(self, *, late_s: float) -> None:
        super().__init__(WINDOW_CLOSED, late_s=late_s)


def window_end(calendar: Calendar, deadline: datetime | None, *, now: datetime) -> datetime:
    """When the line closes or the job's deadline passes, whichever is first (``now``: closed)."""
    closes = open_until(calendar, now) or now
    return min(closes, deadline) if deadline is not None else closes


def check_window(end: datetime, *, now: datetime) -> float:
    """Seconds left before ``end``; raises :class:`WindowClosed` if none."""
    left = (end - now).total_seconds()
    if left <= 0:
        raise WindowClosed(late_s=-left)
    return left


def within(timeout: aiohttp.ClientTimeout, budget_s: float) -> aiohttp.ClientTimeout:
    """``timeout`` with the connection set up within ``budget_s``: a request leaves within its
    attempt's lease, or not at all (a connect timeout is a request never sent)."""
    connect = min(timeout.connect or budget_s, budget_s)
    sock_connect = min(timeout.sock_connect or budget_s, budget_s)
    return aiohttp.ClientTimeout(
        total=timeout.total, connect=connect, sock_connect=sock_connect, sock_read=timeout.sock_read
    )


async def send_in_window(
    session: aiohttp.ClientSession,
    creds: Credentials,
    job: CallbackJob,
    *,
    closes: datetime,
    now: datetime,
    budget_s: float,
    client_timeout: aiohttp.ClientTimeout,
) -> CallbackStarted:
    """Send the job's ``voximplant.callback.start`` only while its window is open (:func:`check_window`),
    its connection set up within both the window and ``budget_s`` (what is left of the lease): the
    one way an attempt and a redial send."""
    window = check_window(closes, now=now)
    return await start_callback(
        session,
        creds.base_url,
        from_line=job.from_line,
        to_number=job.to_number,
        text_to_pronounce=job.text_to_pronounce,
        voice=job.voice,
        access_token=creds.access_token,
        client_timeout=within(client_timeout, min(budget_s, window)),
    )
