"""The deployment's secret: random, kept in Redis under the prefix, created once by whoever needs it first.

It keys HMACs, never encrypts anything: the job id of an intake entry (so that it is stable on
redelivery but cannot be guessed from the entry id, a millisecond timestamp) and the digests of
credentials in the configuration fingerprint (so that a webhook code cannot be checked against it
without Redis). Each use derives its own key (:func:`derive_key`).

If the key is lost (a Redis without persistence restarted, a careless ``DEL``), the next process to
need one makes a new one, and a running worker puts back the one it holds (:func:`deployment_secret`
with ``keep``), so processes stay in agreement. What changes with a new secret: an intake entry
admitted before the loss and delivered again after it gets another job id (dedupe on line + number
and idempotency keys still stop a second call while the first job is pending or within
``dedupe_window``), and credential digests differ from those of processes that still hold the old
one until they restart.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from redis.asyncio import Redis

from schemas.store.keys import Keys
from schemas.store.records import decode_text
from schemas.store.scripts import source

SECRET_BYTES = 32


async def deployment_secret(redis: Redis, keys: Keys, *, keep: bytes | None = None) -> bytes:
    """The deployment's secret, created (atomically, once for all processes) if there is none.

    Args:
        redis: the client.
        keys: key names under the prefix.
        keep: the secret this process already uses: stored again if the key was lost, so that no
            process changes secrets while it runs.

    Returns:
        The secret (hex text as bytes).
    """
    candidate = keep.decode() if keep else secrets.token_hex(SECRET_BYTES)
    value = await redis.register_script(source("deployment_secret"))(keys=[keys.secret], args=[candidate])
    return decode_text(value).encode()


async def read_deployment_secret(redis: Redis, keys: Keys) -> bytes | None:
    """The secret if there is one; never creates it (``callq check`` only reads)."""
    value = await redis.get(keys.secret)
    return None if value is None else decode_text(value).encode()


def derive_key(secret: bytes, purpose: str) -> bytes:
    """A key for one use of the secret, so that no two uses share one."""
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()
