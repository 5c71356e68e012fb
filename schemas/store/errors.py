"""Redis errors as one line a person can act on, without what was sent. Pure.

redis-py writes the command and its arguments into a pipeline's error ("Command # 1 (EVALSHA … a
job's JSON, a phone number …) of pipeline caused error: …"): that part never reaches a terminal or
a log.
"""

from __future__ import annotations

from redis.exceptions import OutOfMemoryError

REDIS_FULL = (
    "Redis is full (maxmemory reached, noeviction) and refuses writes: nothing was stored; "
    "free memory in Redis or raise its maxmemory, then try again"
)

_PIPELINE = " of pipeline caused error: "


def describe_redis_error(exc: BaseException) -> str:
    """``exc`` in one line: what went wrong, never the command that was sent.

    Args:
        exc: a redis-py error (or an OS error on the way to Redis).

    Returns:
        :data:`REDIS_FULL` for a refusal for memory, else the error's class and message.
    """
    if isinstance(exc, OutOfMemoryError):
        return REDIS_FULL
    text = str(exc)
    if _PIPELINE in text:
        text = text.split(_PIPELINE, 1)[1].strip().removeprefix("(").removesuffix(",)").strip("'\"")
    text = " ".join(text.split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
