"""Which configuration each live process runs: a registry in Redis, read to detect drift.

Every worker and ``callq serve`` adds itself at start and refreshes itself every ``REFRESH_S``
(:meth:`ConfigRegistry.report`): an entry of ``{p}:config:live`` (its role, host, pid and
fingerprint digest, scored by when it is presumed gone) and the fingerprint's parts. An entry not
refreshed for ``LIVE_TTL_S`` no longer counts; a process that stops cleanly removes its own. The
registry only reports: nothing refuses to run on a mismatch (a rolling configuration change passes
through one), the processes log it, export it and ``/readyz`` and ``callq check`` show it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from redis.asyncio import Redis

from schemas.config.fingerprint import Fingerprint
from schemas.store.keys import Keys
from schemas.store.records import decode_text

REFRESH_S = 10.0
"""How often a process refreshes its entry (like arq's health check)."""

LIVE_TTL_S = 30.0
"""An entry not refreshed this long is gone: three missed refreshes, a process that died."""

_REPORT = """
-- KEYS: live set, parts of this fingerprint; ARGV: member, ttl_ms, parts JSON
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""

_LIVE = """
-- KEYS: live set: the entries not yet presumed gone (by Redis's clock, which every process shares)
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now_ms, '+inf')
"""


@dataclass(frozen=True)
class LiveProcess:
    """One live process as the registry holds it.

    Attributes:
        role: ``worker`` or ``serve``.
        host: its host name.
        pid: its process id.
        nonce: random, to tell apart two processes with one host name and pid (containers).
        digest: its configuration's fingerprint digest.
    """

    role: str
    host: str
    pid: int
    nonce: str
    digest: str

    def member(self) -> str:
        """Its entry in the live set (the same text at every refresh)."""
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    def describe(self) -> str:
        """How a log line or a check row names it: ``worker host:pid``."""
        return f"{self.role} {self.host}:{self.pid}"


class ConfigRegistry:
    """The live processes of one deployment and their fingerprints. Owns no connection."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis = redis
        self.keys = keys
        self._report = redis.register_script(_REPORT)
        self._live = redis.register_script(_LIVE)

    async def report(self, me: LiveProcess, fingerprint: Fingerprint) -> list[LiveProcess]:
        """Add or refresh ``me``; returns every live process, ``me`` included."""
        keys = [self.keys.config_live, self.keys.config_parts(fingerprint.digest)]
        parts = json.dumps(fingerprint.parts, separators=(",", ":"))
        members = await self._report(keys=keys, args=[me.member(), int(LIVE_TTL_S * 1000), parts])
        return _decode(members)

    async def live(self) -> list[LiveProcess]:
        """Every live process."""
        return _decode(await self._live(keys=[self.keys.config_live], args=[]))

    async def parts(self, digest: str) -> Mapping[str, str] | None:
        """The parts of a live fingerprint (None if no live process refreshed them lately)."""
        raw = await self.redis.get(self.keys.config_parts(digest))
        return None if raw is None else dict(json.loads(raw))

    async def withdraw(self, me: LiveProcess) -> None:
        """Remove ``me`` (a clean stop): the others stop counting it at once."""
        await self.redis.zrem(self.keys.config_live, me.member())


def _decode(members: list[str | bytes]) -> list[LiveProcess]:
    found = []
    for member in members:
        try:
            found.append(LiveProcess(**json.loads(decode_text(member))))
        except (ValueError, TypeError):
            continue  # written by another version: not ours to judge
    return found
